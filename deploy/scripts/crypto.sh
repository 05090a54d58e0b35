#!/usr/bin/env bash
# Crypto material for the deployment, in cryptogen's layout, under CRYPTO_DIR (the
# docker-compose `crypto` service runs this in the fabric-tools image). An empty folder
# gets `cryptogen generate`; a folder with material gets `cryptogen extend`, which adds
# only the orgs, nodes and users the config names and the folder lacks (how an org is
# added). Material written by `python -m fedledger.devnet.ca` or `fedledger devnet`
# has the same layout and is used as it is.
#
# Then the one certificate cryptogen's config cannot describe: each peer org's chaincode
# server (chaincode as a service, chaincode.<domain>:9999) serves TLS with a certificate
# from the org's TLS CA, in
#   peerOrganizations/<domain>/chaincode/tls/{server.crt, server.key, ca.crt}
# (openssl; server authentication only: no MSP identity, no NodeOU, no clientAuth). Its
# names: the host the org's package dials (lib.sh's chaincode_address), the compose host
# name, localhost and 127.0.0.1. A certificate that still verifies against the org's TLS
# CA, matches its key and names that host is kept; otherwise a new key and certificate
# are made. ca.crt is the org's TLS CA (which also signed the peer's TLS certificate, the
# client certificate the chaincode server asks for).
#
# And the HTTPS certificates of the Python REST services, from their org's TLS CA, in
#   peerOrganizations/<domain>/services/<name>/tls/{server.crt, server.key, ca.crt}
# (what fedledger.devnet.ca's write_service_tls writes): each peer org's node
# (<org>-node, e.g. org1-node), and in the operator org's folder (OPERATOR_ORG, default
# org1) the coordinator and the bridge. Their names: the compose host name, localhost and
# 127.0.0.1; kept while still valid, like the chaincode servers' certificates. The
# clients verify them against the org's TLS CA (ca.crt, or tlsca/tlsca.<domain>-cert.pem).
# shellcheck source=deploy/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

# keep_chaincode_tls TLS_DIR CA_CERT HOST: whether TLS_DIR's certificate can stay.
keep_chaincode_tls() {
    local tls="$1" ca="$2" host="$3" name="DNS:$3"
    [[ -s "${tls}/server.crt" && -s "${tls}/server.key" ]] || return 1
    openssl verify -purpose sslserver -CAfile "$ca" "${tls}/server.crt" >/dev/null 2>&1 || return 1
    [[ "$(openssl x509 -in "${tls}/server.crt" -noout -pubkey)" == \
       "$(openssl pkey -in "${tls}/server.key" -pubout)" ]] || return 1
    [[ "$host" =~ ^[0-9.]+$ ]] && name="IPAddress:${host}"
    # The SAN line of -text ("DNS:a, IP Address:127.0.0.1", OpenSSL 1.1 and 3), one a line.
    openssl x509 -in "${tls}/server.crt" -noout -text \
        | grep -A1 'X509v3 Subject Alternative Name' | tail -n 1 | tr -d ' ' | tr ',' '\n' \
        | grep -qxF "$name"
}

# sign_server_tls ORG_DIR TLS_DIR CN SAN...: a new key and server certificate (serverAuth)
# from ORG_DIR's TLS CA in TLS_DIR (SANs as openssl writes them: DNS:x, IP:1.2.3.4).
sign_server_tls() {
    local org_dir="$1" tls="$2" host="$3" ca work out
    shift 3
    ca="${org_dir}/tlsca/tlsca.$(basename "$org_dir")-cert.pem"
    work="$(mktemp -d)"
    printf '%s\n' "[v3]" "basicConstraints = critical, CA:FALSE" \
        "keyUsage = critical, digitalSignature, keyEncipherment" \
        "extendedKeyUsage = serverAuth" "subjectKeyIdentifier = hash" \
        "authorityKeyIdentifier = keyid:always" \
        "subjectAltName = $(IFS=,; printf '%s' "$*")" > "${work}/ext.cnf"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "${work}/server.key")
    openssl req -new -key "${work}/server.key" -out "${work}/server.csr" \
        -subj "/C=US/ST=California/L=San Francisco/CN=${host}"
    if ! out="$(openssl x509 -req -in "${work}/server.csr" -CA "$ca" \
            -CAkey "${org_dir}/tlsca/priv_sk" -set_serial "0x$(openssl rand -hex 16)" \
            -days 3650 -sha256 -extfile "${work}/ext.cnf" -extensions v3 \
            -out "${work}/server.crt" 2>&1)"; then
        die "openssl could not sign ${host}'s certificate: ${out}"
    fi
    mv -f "${work}/server.key" "${tls}/server.key"
    mv -f "${work}/server.crt" "${tls}/server.crt"
    rm -rf "$work"
}

chaincode_tls() {
    local org_dir="$1" domain host address dialed ca tls name
    local -a names
    domain="$(basename "$org_dir")"
    host="chaincode.${domain}"
    address="$(chaincode_address "${domain%".${DOMAIN}"}")"   # org1.example.com -> org1
    dialed="${address%:*}"
    ca="${org_dir}/tlsca/tlsca.${domain}-cert.pem"
    [[ -f "$ca" && -f "${org_dir}/tlsca/priv_sk" ]] || die "no TLS CA in ${org_dir}/tlsca"
    tls="${org_dir}/chaincode/tls"
    mkdir -p "$tls"
    cp "$ca" "${tls}/ca.crt"
    if keep_chaincode_tls "$tls" "$ca" "$dialed"; then
        return 0
    fi
    log "issuing the TLS certificate of ${host} (${dialed}) from ${domain}'s TLS CA"
    names=("DNS:${host}")
    for name in "$dialed" localhost 127.0.0.1; do
        if [[ "$name" =~ ^[0-9.]+$ ]]; then name="IP:${name}"; else name="DNS:${name}"; fi
        [[ " ${names[*]} " == *" ${name} "* ]] || names+=("$name")
    done
    sign_server_tls "$org_dir" "$tls" "$host" "${names[@]}"
}

# service_tls ORG_DIR NAME: the HTTPS certificate of the org's REST service NAME (its
# compose host name) in ORG_DIR/services/NAME/tls.
service_tls() {
    local org_dir="$1" name="$2" domain ca tls
    domain="$(basename "$org_dir")"
    ca="${org_dir}/tlsca/tlsca.${domain}-cert.pem"
    [[ -f "$ca" && -f "${org_dir}/tlsca/priv_sk" ]] || die "no TLS CA in ${org_dir}/tlsca"
    tls="${org_dir}/services/${name}/tls"
    mkdir -p "$tls"
    cp "$ca" "${tls}/ca.crt"
    if keep_chaincode_tls "$tls" "$ca" "$name"; then
        return 0
    fi
    log "issuing the HTTPS certificate of ${name} from ${domain}'s TLS CA"
    sign_server_tls "$org_dir" "$tls" "$name" "DNS:${name}" "DNS:localhost" "IP:127.0.0.1"
}

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
command -v openssl >/dev/null || die "openssl is needed for the chaincode servers' and services' TLS certificates"
operator_dir="${CRYPTO_DIR}/peerOrganizations/${OPERATOR_ORG:-org1}.${DOMAIN}"
for org_dir in "${CRYPTO_DIR}"/peerOrganizations/*/; do
    [[ -d "$org_dir" ]] || continue
    org_dir="${org_dir%/}"
    chaincode_tls "$org_dir"
    domain="$(basename "$org_dir")"
    service_tls "$org_dir" "${domain%".${DOMAIN}"}-node"   # org1.example.com -> org1-node
    if [[ "$org_dir" == "$operator_dir" ]]; then
        service_tls "$org_dir" coordinator
        service_tls "$org_dir" bridge
    fi
done
# The Python services' containers run as uid 10001 (deploy/docker): they own the
# material so they can read their org's client key; keys stay readable by their owner
# only (the Fabric containers run as root), certificates and folders by everyone.
chown -R "${SERVICES_UID:-10001}:${SERVICES_GID:-10001}" "$CRYPTO_DIR"
find "$CRYPTO_DIR" -type d -exec chmod 755 {} +
find "$CRYPTO_DIR" -type f -exec chmod 644 {} +
find "$CRYPTO_DIR" -type f \( -name priv_sk -o -name '*.key' \) -exec chmod 600 {} +
log "crypto material ready"
