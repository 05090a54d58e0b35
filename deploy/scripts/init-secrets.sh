#!/usr/bin/env bash
# Generate the deployment's secrets on the host, once (existing files are kept):
#   deploy/scripts/init-secrets.sh [org1 org2 org3]
# into FEDLEDGER_SECRETS_DIR (default deploy/secrets, ignored by git, mode 700). The
# compose file hands each container only the files it needs, at /run/secrets/<name>:
#   postgres_password                 Postgres and every service's database password
#   operator_token                    the consortium operator's bearer token (keep it)
#   operator_token_sha256             what the coordinator checks it against
#   <org>_admin_token(_sha256)        an org node's first admin user's token (and hash)
#   <org>_anchor_key                  the org's EVM anchor key (hex): it signs anchors
#   <org>_shard_key                   the org's secret sample -> SISA shard key
#   bridge_key                        the bridge's gas account (hex key; on a public chain
#                                     use an encrypted keystore instead, docs/deploy.md)
# Needs openssl and sha256sum. Files are readable inside the containers (which run as an
# unprivileged user); the folder itself is closed to other host users.
set -euo pipefail
cd "$(dirname "$0")/../.."

secrets_dir="${FEDLEDGER_SECRETS_DIR:-deploy/secrets}"
orgs=("$@")
[[ ${#orgs[@]} -gt 0 ]] || orgs=(org1 org2 org3)
umask 077
mkdir -p "$secrets_dir"
chmod 700 "$secrets_dir"

put() {  # put NAME VALUE: write once
    local path="${secrets_dir}/$1"
    if [[ -s "$path" ]]; then
        return 0
    fi
    printf '%s\n' "$2" > "$path"
    chmod 644 "$path"
    echo "wrote ${path}"
}
token() { openssl rand -base64 24 | tr '+/' '-_'; }
hex_key() {
    # 32 random bytes; a value of 0 or >= the secp256k1 order is rejected and redrawn.
    local key
    while :; do
        key="$(openssl rand -hex 32)"
        [[ "$key" =~ ^0{64}$ || "$key" > "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140" ]] || break
    done
    printf '%s\n' "$key"
}
put_token() {  # put_token NAME: NAME (the token) and NAME_sha256 (its hash, no newline hashed)
    put "$1" "$(token)"
    put "$1_sha256" "$(tr -d '\n' < "${secrets_dir}/$1" | sha256sum | cut -c1-64)"
}

put postgres_password "$(openssl rand -hex 24)"
put_token operator_token
put bridge_key "$(hex_key)"
for org in "${orgs[@]}"; do
    put_token "${org}_admin_token"
    put "${org}_anchor_key" "$(hex_key)"
    put "${org}_shard_key" "$(openssl rand -hex 16)"
done
echo "secrets in ${secrets_dir}: $(find "$secrets_dir" -type f | wc -l) files" \
    "(the operator token: ${secrets_dir}/operator_token)"
