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
#
# Addresses default to the compose network's host names and ports; a network started
# natively (the real-Fabric test lane, tests/fabric/realnet.py, on 127.0.0.1) sets them:
#   ORDERER_ADDRESS          host:port of the orderer (broadcast, deliver)
#   ORDERER_ADMIN_ADDRESS    host:port of its channel participation API (osnadmin)
#   PEER_ADDRESS_<ORG>       host:port of an org's peer, e.g. PEER_ADDRESS_ORG1=127.0.0.1:7051
#                            (default peer0.<org>.example.com and FABRIC_ORGS' port)
#   CHAINCODE_ADDRESS_<ORG>  host:port the org's CCaaS package dials, e.g.
#                            CHAINCODE_ADDRESS_ORG1=127.0.0.1:9999
# TLS keeps the compose host names (ORDERER_HOST for --ordererTLSHostnameOverride);
# cryptogen's certificates also name localhost and 127.0.0.1 (crypto-config.yaml SANS).
# CHAINCODE_TLS_DISABLED (true, or false as docker-compose.yml sets it, like its chaincode
# containers): false makes each org's CCaaS package dial its chaincode server over mutual
# TLS (use_chaincode_tls); true, the default where it is unset (a native network whose
# chaincode servers serve plaintext, tests/fabric/realnet.py), leaves the hop plaintext.
# RETRY_ATTEMPTS (10) and RETRY_DELAY (3 s) pace `retry`.
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
CHAINCODE_TLS_DISABLED="${CHAINCODE_TLS_DISABLED:-true}"
ORDERER_HOST="${ORDERER_HOST:-orderer.${DOMAIN}}"
ORDERER_ADDRESS="${ORDERER_ADDRESS:-${ORDERER_HOST}:7050}"
ORDERER_ADMIN_ADDRESS="${ORDERER_ADMIN_ADDRESS:-${ORDERER_HOST}:7053}"
RETRY_ATTEMPTS="${RETRY_ATTEMPTS:-10}"
RETRY_DELAY="${RETRY_DELAY:-3}"
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
private_channel() { printf '%s-private\n' "$1"; }             # org1 -> org1-private

# An org's value of a per-org override (PEER_ADDRESS_ORG1 for "PEER_ADDRESS org1"), or
# nothing when it is unset.
org_override() {
    local name="${1}_${2^^}"
    printf '%s' "${!name:-}"
}

peer_address() {                  # org1 -> peer0.org1.example.com:7051 (or PEER_ADDRESS_ORG1)
    local address
    address="$(org_override PEER_ADDRESS "$1")"
    printf '%s\n' "${address:-$(peer_host "$1"):$(peer_port "$1")}"
}

chaincode_host() { printf 'chaincode.%s\n' "$(org_domain "$1")"; }   # its docker-compose service

chaincode_address() {             # org1 -> chaincode.org1.example.com:9999 (or CHAINCODE_ADDRESS_ORG1)
    local address
    address="$(org_override CHAINCODE_ADDRESS "$1")"
    printf '%s\n' "${address:-$(chaincode_host "$1"):${CHAINCODE_PORT}}"
}
peer_tls_ca() {
    local domain
    domain="$(org_domain "$1")"
    printf '%s/peerOrganizations/%s/tlsca/tlsca.%s-cert.pem\n' "$CRYPTO_DIR" "$domain" "$domain"
}
peer_tls_dir() {                  # org1 -> .../peers/peer0.org1.example.com/tls
    printf '%s/peerOrganizations/%s/peers/%s/tls\n' "$CRYPTO_DIR" "$(org_domain "$1")" "$(peer_host "$1")"
}

# Set what deploy/chaincode/package.sh reads to make an org's package dial its chaincode
# server over mutual TLS (call it in a subshell): the org's TLS CA, which signed the
# chaincode server's certificate (crypto.sh), and the peer's own TLS key and certificate
# (cryptogen gives them clientAuth), which the peer presents and the chaincode server
# checks against that same CA. With CHAINCODE_TLS_DISABLED=true: unset, a plaintext package.
use_chaincode_tls() {
    local tls
    case "$CHAINCODE_TLS_DISABLED" in
        true)
            unset CHAINCODE_TLS_ROOT_CERT CHAINCODE_TLS_CLIENT_CERT CHAINCODE_TLS_CLIENT_KEY
            return 0 ;;
        false) ;;
        *) die "CHAINCODE_TLS_DISABLED must be true or false, not '${CHAINCODE_TLS_DISABLED}'" ;;
    esac
    tls="$(peer_tls_dir "$1")"
    export CHAINCODE_TLS_ROOT_CERT CHAINCODE_TLS_CLIENT_CERT CHAINCODE_TLS_CLIENT_KEY
    CHAINCODE_TLS_ROOT_CERT="$(peer_tls_ca "$1")"
    CHAINCODE_TLS_CLIENT_CERT="${tls}/server.crt"
    CHAINCODE_TLS_CLIENT_KEY="${tls}/server.key"
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
    for ((attempt = 1; attempt <= RETRY_ATTEMPTS; attempt++)); do
        if "$@"; then
            return 0
        fi
        log "attempt ${attempt} failed: $*; retrying in ${RETRY_DELAY} s"
        sleep "$RETRY_DELAY"
    done
    die "gave up: $*"
}
