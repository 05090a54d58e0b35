#!/usr/bin/env bash
# Crypto material for the deployment, in cryptogen's layout, under CRYPTO_DIR (the
# docker-compose `crypto` service runs this in the fabric-tools image). An empty folder
# gets `cryptogen generate`; a folder with material gets `cryptogen extend`, which adds
# only the orgs, nodes and users the config names and the folder lacks (how an org is
# added). Material written by `python -m fedledger.fabric.devca` or `fedledger devnet`
# has the same layout and is used as it is.
# shellcheck source=deploy/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

config="${FABRIC_CFG_DIR}/crypto-config.yaml"
[[ -f "$config" ]] || die "no cryptogen config at $config"
mkdir -p "$CRYPTO_DIR"
if [[ -d "${CRYPTO_DIR}/peerOrganizations" ]]; then
    log "extending the crypto material in ${CRYPTO_DIR} from ${config}"
    cryptogen extend --config="$config" --input="$CRYPTO_DIR"
else
    log "generating the crypto material in ${CRYPTO_DIR} from ${config}"
    cryptogen generate --config="$config" --output="$CRYPTO_DIR"
fi
# The containers of the Python services run as an unprivileged user: they must be able
# to read the certificates and their org's client key.
chmod -R a+rX "$CRYPTO_DIR"
log "crypto material ready"
