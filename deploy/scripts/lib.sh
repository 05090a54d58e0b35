#!/usr/bin/env bash
# The variables below are used by the scripts that source this file.
# shellcheck disable=SC2034
# Shared by the network scripts; they run in the fabric-tools container (docker-compose
# service `network`), where the paths below are mounted:
#   /etc/fedledger/fabric         deploy/fabric (configtx.yaml, crypto-config.yaml), read-only
#   /etc/fedledger/organizations  the crypto material (cryptogen layout)
#   /etc/fedledger/chaincode      deploy/chaincode (package.sh), read-only
#   /var/fedledger/artifacts      channel genesis blocks and chaincode packages (a volume)
#   /var/fedledger/chaincode-ids  one <org>.id per org: the package id its chaincode
#                                 container serves (a volume the chaincode containers read)
# FABRIC_ORGS (set in docker-compose.yml) lists the orgs and their peers' ports:
#   "org1:7051 org2:9051 org3:11051"
# The names follow cryptogen's config: org1 -> Org1MSP, peer0.org1.example.com, channel
# org1-private, chaincode server chaincode.org1.example.com:9999.
set -euo pipefail

FABRIC_CFG_DIR="${FABRIC_CFG_DIR:-/etc/fedledger/fabric}"
CRYPTO_DIR="${CRYPTO_DIR:-/etc/fedledger/organizations}"
CHAINCODE_DIR="${CHAINCODE_DIR:-/etc/fedledger/chaincode}"
ARTIFACTS_DIR="${ARTIFACTS_DIR:-/var/fedledger/artifacts}"
CCID_DIR="${CCID_DIR:-/var/fedledger/chaincode-ids}"
DOMAIN="${DOMAIN:-example.com}"
CONSORTIUM_CHANNEL="${CONSORTIUM_CHANNEL:-consortium}"
CHAINCODE_NAME="${CHAINCODE_NAME:-fedledger}"
CHAINCODE_VERSION="${CHAINCODE_VERSION:-1.0}"
CHAINCODE_SEQUENCE="${CHAINCODE_SEQUENCE:-1}"
CHAINCODE_LABEL="${CHAINCODE_NAME}_${CHAINCODE_VERSION}"
CHAINCODE_PORT="${CHAINCODE_PORT:-9999}"
ORDERER_HOST="orderer.${DOMAIN}"
ORDERER_ADDRESS="${ORDERER_HOST}:7050"
ORDERER_ADMIN_ADDRESS="${ORDERER_HOST}:7053"
ORDERER_DIR="${CRYPTO_DIR}/ordererOrganizations/${DOMAIN}"
ORDERER_TLS_CA="${ORDERER_DIR}/tlsca/tlsca.${DOMAIN}-cert.pem"
ORDERER_ADMIN_TLS_DIR="${ORDERER_DIR}/users/Admin@${DOMAIN}/tls"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The org keys of FABRIC_ORGS, in order ("org1 org2 org3").
org_keys() {
    local entry
    [[ -n "${FABRIC_ORGS:-}" ]] || die "FABRIC_ORGS is not set (e.g. 'org1:7051 org2:9051')"
    for entry in ${FABRIC_ORGS}; do
        printf '%s\n' "${entry%%:*}"
    done
}

peer_port() {
    local entry
    for entry in ${FABRIC_ORGS}; do
        if [[ "${entry%%:*}" == "$1" ]]; then
            printf '%s\n' "${entry##*:}"
            return 0
        fi
    done
    die "org $1 is not in FABRIC_ORGS"
}

org_name() { printf 'Org%s\n' "${1#org}"; }                  # org1 -> Org1
msp_id() { printf '%sMSP\n' "$(org_name "$1")"; }             # org1 -> Org1MSP
org_domain() { printf '%s.%s\n' "$1" "$DOMAIN"; }             # org1 -> org1.example.com
peer_host() { printf 'peer0.%s\n' "$(org_domain "$1")"; }
peer_address() { printf '%s:%s\n' "$(peer_host "$1")" "$(peer_port "$1")"; }
private_channel() { printf '%s-private\n' "$1"; }             # org1 -> org1-private
chaincode_address() { printf 'chaincode.%s:%s\n' "$(org_domain "$1")" "$CHAINCODE_PORT"; }
peer_tls_ca() {
    local domain
    domain="$(org_domain "$1")"
    printf '%s/peerOrganizations/%s/tlsca/tlsca.%s-cert.pem\n' "$CRYPTO_DIR" "$domain" "$domain"
}

# configtx.yaml profile of a channel: consortium -> ConsortiumChannel,
# org2-private -> Org2PrivateChannel.
channel_profile() {
    if [[ "$1" == "$CONSORTIUM_CHANNEL" ]]; then
        printf 'ConsortiumChannel\n'
    else
        printf '%sPrivateChannel\n' "$(org_name "${1%-private}")"
    fi
}

# The orgs of a channel.
channel_orgs() {
    if [[ "$1" == "$CONSORTIUM_CHANNEL" ]]; then
        org_keys
    else
        printf '%s\n' "${1%-private}"
    fi
}

# The chaincode's endorsement policy on a channel, as peer lifecycle arguments (one a
# line): the consortium's MAJORITY Endorsement, a private channel's own peer.
endorsement_policy_args() {
    if [[ "$1" == "$CONSORTIUM_CHANNEL" ]]; then
        printf '%s\n' --channel-config-policy /Channel/Application/Endorsement
    else
        printf '%s\n' --signature-policy "OR('$(msp_id "${1%-private}").peer')"
    fi
}

all_channels() {
    local org
    printf '%s\n' "$CONSORTIUM_CHANNEL"
    for org in $(org_keys); do
        private_channel "$org"
    done
}

# Act as an org's admin against its peer (the peer CLI reads these).
use_org() {
    local domain
    domain="$(org_domain "$1")"
    export CORE_PEER_TLS_ENABLED=true
    export CORE_PEER_LOCALMSPID
    CORE_PEER_LOCALMSPID="$(msp_id "$1")"
    export CORE_PEER_MSPCONFIGPATH="${CRYPTO_DIR}/peerOrganizations/${domain}/users/Admin@${domain}/msp"
    export CORE_PEER_ADDRESS
    CORE_PEER_ADDRESS="$(peer_address "$1")"
    export CORE_PEER_TLS_ROOTCERT_FILE
    CORE_PEER_TLS_ROOTCERT_FILE="$(peer_tls_ca "$1")"
}

# Run a command until it succeeds (peers and the orderer may still be starting).
retry() {
    local attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        if "$@"; then
            return 0
        fi
        log "attempt ${attempt} failed: $*; retrying in 3 s"
        sleep 3
    done
    die "gave up: $*"
}
