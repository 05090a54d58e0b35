#!/usr/bin/env bash
# The fedledger chaincode as a service on every channel: one CCaaS package per org (it
# names that org's chaincode container), installed on the org's peer, approved by every
# org of each channel and committed. Writes CCID_DIR/<org>.id, the package id the org's
# chaincode container registers with. Idempotent.
#
# Endorsement (the same policies as the dev peer's network.json):
#   consortium      the channel's /Channel/Application/Endorsement (MAJORITY Endorsement)
#   <org>-private   OR('<Org>MSP.peer')
# Collections: none. The chaincode keeps no private data collections; each org's private
# records live on its own channel (implicit org collections need no configuration).
# shellcheck source=deploy/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

mkdir -p "$ARTIFACTS_DIR" "$CCID_DIR"
orderer_args=(-o "$ORDERER_ADDRESS" --ordererTLSHostnameOverride "$ORDERER_HOST" --tls
              --cafile "$ORDERER_TLS_CA")

install() {
    local org="$1" package id
    package="${ARTIFACTS_DIR}/${CHAINCODE_NAME}-${org}.tar.gz"
    if [[ ! -f "$package" ]]; then
        bash "${CHAINCODE_DIR}/package.sh" "$(chaincode_address "$org")" "$CHAINCODE_LABEL" \
            "$package" >/dev/null
    fi
    use_org "$org"
    id="$(peer lifecycle chaincode calculatepackageid "$package")"
    if peer lifecycle chaincode queryinstalled --output json \
            | jq -e --arg id "$id" '.installed_chaincodes[]? | select(.package_id == $id)' >/dev/null; then
        log "$(peer_host "$org") has ${id}"
    else
        log "installing ${id} on $(peer_host "$org")"
        retry peer lifecycle chaincode install "$package"
    fi
    printf '%s\n' "$id" > "${CCID_DIR}/${org}.id"
}

committed() {
    use_org "$2"
    peer lifecycle chaincode querycommitted --channelID "$1" --name "$CHAINCODE_NAME" >/dev/null 2>&1
}

deploy_on() {
    local channel="$1" org id first=""
    local -a policy peers=()
    mapfile -t policy < <(endorsement_policy_args "$channel")
    for org in $(channel_orgs "$channel"); do
        first="${first:-$org}"
        peers+=(--peerAddresses "$(peer_address "$org")" --tlsRootCertFiles "$(peer_tls_ca "$org")")
    done
    if committed "$channel" "$first"; then
        log "${CHAINCODE_NAME} already committed on ${channel}"
        return 0
    fi
    for org in $(channel_orgs "$channel"); do
        id="$(cat "${CCID_DIR}/${org}.id")"
        use_org "$org"
        log "$(msp_id "$org") approves ${CHAINCODE_NAME} ${CHAINCODE_VERSION} on ${channel}"
        retry peer lifecycle chaincode approveformyorg "${orderer_args[@]}" \
            --channelID "$channel" --name "$CHAINCODE_NAME" --version "$CHAINCODE_VERSION" \
            --package-id "$id" --sequence "$CHAINCODE_SEQUENCE" "${policy[@]}"
    done
    use_org "$first"
    peer lifecycle chaincode checkcommitreadiness --channelID "$channel" \
        --name "$CHAINCODE_NAME" --version "$CHAINCODE_VERSION" \
        --sequence "$CHAINCODE_SEQUENCE" "${policy[@]}" --output json
    log "committing ${CHAINCODE_NAME} on ${channel}"
    retry peer lifecycle chaincode commit "${orderer_args[@]}" --channelID "$channel" \
        --name "$CHAINCODE_NAME" --version "$CHAINCODE_VERSION" \
        --sequence "$CHAINCODE_SEQUENCE" "${policy[@]}" "${peers[@]}"
}

for org in $(org_keys); do
    install "$org"
done
for channel in $(all_channels); do
    deploy_on "$channel"
done
log "chaincode ${CHAINCODE_LABEL} committed on: $(all_channels | tr '\n' ' ')"
