#!/usr/bin/env bash
# CI check: install the pinned toolchain from the lockfile, recompile into a temporary
# directory and fail if the result differs from the committed artifacts in any byte.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

npm --prefix "$HERE" ci --no-audit --no-fund
node "$HERE/compile.mjs" --out "$TMP"

status=0
for built in "$TMP"/*.json; do
  name="$(basename "$built")"
  if [[ ! -f "$HERE/artifacts/$name" ]]; then
    echo "check.sh: artifacts/$name is missing (run: node contracts/compile.mjs)" >&2
    status=1
  elif ! diff -u "$HERE/artifacts/$name" "$built" >"$TMP/$name.diff"; then
    echo "check.sh: artifacts/$name differs from a fresh build (run: node contracts/compile.mjs):" >&2
    head -n 40 "$TMP/$name.diff" >&2
    status=1
  fi
done
for committed in "$HERE"/artifacts/*.json; do
  [[ -e "$committed" ]] || continue
  name="$(basename "$committed")"
  if [[ ! -f "$TMP/$name" ]]; then
    echo "check.sh: artifacts/$name is stale (no such contract any more)" >&2
    status=1
  fi
done
if [[ $status -eq 0 ]]; then
  echo "check.sh: artifacts are up to date"
fi
exit $status
