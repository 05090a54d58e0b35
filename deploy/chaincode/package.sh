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
# With TLS, set CHAINCODE_TLS_ROOT_CERT to the PEM file of the CA that signed the
# chaincode server's certificate; the peer then requires TLS.
# The package is reproducible (GNU tar, fixed order, owners, modes and times, gzip -n):
# the same ADDRESS and LABEL always give the same bytes, so the same package id
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

tls_required=false
root_cert=""
if [[ -n "${CHAINCODE_TLS_ROOT_CERT:-}" ]]; then
    tls_required=true
    # JSON string of the PEM: escape backslashes and quotes, join lines with \n
    root_cert="$(sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' "$CHAINCODE_TLS_ROOT_CERT" | awk '{printf "%s\\n", $0}')"
fi

{
    printf '{\n  "address": "%s",\n  "dial_timeout": "10s",\n  "tls_required": %s' "$address" "$tls_required"
    if [[ "$tls_required" == true ]]; then
        printf ',\n  "client_auth_required": false,\n  "root_cert": "%s"' "$root_cert"
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
