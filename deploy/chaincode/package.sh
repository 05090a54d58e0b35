#!/usr/bin/env bash
# Package the fedledger chaincode for chaincode-as-a-service (Fabric 2.4+ ccaas builder).
#
# The package holds no code, only where the peer dials the chaincode server:
#   metadata.json  {"type": "ccaas", "label": ...}
#   code.tar.gz    connection.json {"address", "dial_timeout", "tls_required", ...}
# Install it with `peer lifecycle chaincode install <out>`; then run the chaincode
# container with CHAINCODE_ID=<package id> and CHAINCODE_SERVER_ADDRESS=0.0.0.0:<port>.
#
# usage: deploy/chaincode/package.sh ADDRESS [LABEL] [OUT]
#   ADDRESS  host:port the peer dials, e.g. fedledger-cc-org1:9999
#   LABEL    package label (default fedledger_1.0)
#   OUT      output file (default ./<LABEL>.tar.gz)
# TLS (Fabric's connection.json fields; deploy/scripts/chaincode.sh sets these, lib.sh's
# use_chaincode_tls), PEM files whose text goes into connection.json:
#   CHAINCODE_TLS_ROOT_CERT    the CA that signed the chaincode server's certificate
#                              ("root_cert"): the peer then requires TLS ("tls_required")
#   CHAINCODE_TLS_CLIENT_KEY   with CHAINCODE_TLS_CLIENT_CERT: the key and certificate the
#   CHAINCODE_TLS_CLIENT_CERT  peer presents ("client_key", "client_cert"), mutual TLS
#                              ("client_auth_required")
# The package then holds that private key: keep it where the peer's own key may be.
# The package is reproducible (GNU tar, fixed order, owners, modes and times, gzip -n):
# the same ADDRESS, LABEL and TLS files always give the same bytes, so the same package id
# (LABEL:sha256 of the file) on every machine and every run.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
    echo "usage: $0 ADDRESS [LABEL] [OUT]" >&2
    exit 2
fi
address="$1"
label="${2:-fedledger_1.0}"
out="${3:-./${label}.tar.gz}"
if [[ ! "$address" =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]]; then
    echo "error: ADDRESS must be host:port, got '$address'" >&2
    exit 2
fi
if [[ ! "$label" =~ ^[A-Za-z0-9_.+-]+$ ]]; then
    echo "error: LABEL may hold only letters, digits and _.+-, got '$label'" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The text of the PEM file variable $1 names, as the inside of a JSON string: backslashes
# and quotes escaped, lines joined with \n.
pem_json() {
    local name="$1" file="${!1}"
    if [[ ! -r "$file" ]] || ! grep -q -e '-----BEGIN ' "$file"; then
        echo "error: ${name}: '${file}' is not a readable PEM file" >&2
        exit 2
    fi
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\r$//' "$file" | awk '{printf "%s\\n", $0}'
}

tls_required=false client_auth=false root_cert="" client_key="" client_cert=""
if [[ -n "${CHAINCODE_TLS_ROOT_CERT:-}" ]]; then
    tls_required=true
    root_cert="$(pem_json CHAINCODE_TLS_ROOT_CERT)"
fi
if [[ -n "${CHAINCODE_TLS_CLIENT_KEY:-}${CHAINCODE_TLS_CLIENT_CERT:-}" ]]; then
    if [[ "$tls_required" != true || -z "${CHAINCODE_TLS_CLIENT_KEY:-}" ||
          -z "${CHAINCODE_TLS_CLIENT_CERT:-}" ]]; then
        echo "error: CHAINCODE_TLS_CLIENT_KEY and CHAINCODE_TLS_CLIENT_CERT go together," \
             "and with CHAINCODE_TLS_ROOT_CERT" >&2
        exit 2
    fi
    client_auth=true
    client_key="$(pem_json CHAINCODE_TLS_CLIENT_KEY)"
    client_cert="$(pem_json CHAINCODE_TLS_CLIENT_CERT)"
fi

{
    printf '{\n  "address": "%s",\n  "dial_timeout": "10s",\n  "tls_required": %s' "$address" "$tls_required"
    if [[ "$tls_required" == true ]]; then
        printf ',\n  "client_auth_required": %s,\n  "root_cert": "%s"' "$client_auth" "$root_cert"
    fi
    if [[ "$client_auth" == true ]]; then
        printf ',\n  "client_key": "%s",\n  "client_cert": "%s"' "$client_key" "$client_cert"
    fi
    printf '\n}\n'
} > "$work/connection.json"
printf '{\n  "type": "ccaas",\n  "label": "%s"\n}\n' "$label" > "$work/metadata.json"

pack() {  # pack OUT FILE...: a reproducible .tar.gz of FILEs in $work
    local target="$1"
    shift
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u=rw,go=r \
        -C "$work" -cf - "$@" | gzip -n -9 > "$target"
}
pack "$work/code.tar.gz" connection.json
pack "$out" metadata.json code.tar.gz
echo "$out"
