#!/usr/bin/env bash
# Entry point of the docker-compose `network` service (fabric-tools image): channels,
# then the chaincode. Safe to run again: every step skips what is already done.
# shellcheck source=deploy/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

bash "$(dirname "$0")/channels.sh"
bash "$(dirname "$0")/chaincode.sh"
log "network ready"
