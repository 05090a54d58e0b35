#!/usr/bin/env bash
# Entry point of a chaincode container: serve the fedledger chaincode as a service
# (python -m fedledger_chaincode) under the package id its peer installed, which the
# `network` service writes to CHAINCODE_ID_FILE (waited for, up to 10 minutes).
set -euo pipefail

: "${CHAINCODE_ID_FILE:?set CHAINCODE_ID_FILE (the package id file the network service writes)}"
: "${CHAINCODE_SERVER_ADDRESS:?set CHAINCODE_SERVER_ADDRESS (e.g. 0.0.0.0:9999)}"
for _ in $(seq 1 600); do
    [[ -s "$CHAINCODE_ID_FILE" ]] && break
    sleep 1
done
[[ -s "$CHAINCODE_ID_FILE" ]] || { echo "no package id in $CHAINCODE_ID_FILE" >&2; exit 1; }
CHAINCODE_ID="$(tr -d '[:space:]' < "$CHAINCODE_ID_FILE")"
export CHAINCODE_ID
echo "serving chaincode ${CHAINCODE_ID} on ${CHAINCODE_SERVER_ADDRESS}" >&2
exec python -m fedledger_chaincode
