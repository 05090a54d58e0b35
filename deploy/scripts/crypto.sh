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
# The Python services' containers run as uid 10001 (deploy/docker): they own the
# material so they can read their org's client key; keys stay readable by their owner
# only (the Fabric containers run as root), certificates and folders by everyone.
chown -R "${SERVICES_UID:-10001}:${SERVICES_GID:-10001}" "$CRYPTO_DIR"
find "$CRYPTO_DIR" -type d -exec chmod 755 {} +
find "$CRYPTO_DIR" -type f -exec chmod 644 {} +
find "$CRYPTO_DIR" -type f \( -name priv_sk -o -name '*.key' \) -exec chmod 600 {} +
log "crypto material ready"
