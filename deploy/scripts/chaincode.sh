#!/usr/bin/env bash
# The fedledger chaincode as a service on every channel: one CCaaS package per org (it
# names that org's chaincode server), installed on the org's peer, approved by every org
# of each channel and committed once. An org that joins a channel later (add-org.sh)
# approves the definition already committed there. Writes CCID_DIR/<org>.id, the package
# id the org's chaincode container registers with. Idempotent: approvals and commits
# already made are skipped.
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
        (use_chaincode_tls "$org"
         bash "${CHAINCODE_DIR}/package.sh" "$(chaincode_address "$org")" "$CHAINCODE_LABEL" \
             "$package" >/dev/null)
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

# The definition of the chaincode committed on a channel: querycommitted's JSON (name,
# version, sequence, validation_parameter, collections, and approvals: each member org's
# approval of it, true or false), or nothing when none is committed. Asked of the peer of
# an org that was in the channel before (a new org's peer may still be catching up).
committed_definition() {
    local channel="$1" all
    use_org "$2"
    # Without --name the query succeeds, with an empty list, when nothing is committed: a
    # failure is the peer's, not "not committed".
    all="$(retry peer lifecycle chaincode querycommitted --channelID "$channel" --output json)"
    if jq -e --arg name "$CHAINCODE_NAME" '.chaincode_definitions[]? | select(.name == $name)' \
            <<<"$all" >/dev/null; then
        retry peer lifecycle chaincode querycommitted --channelID "$channel" \
            --name "$CHAINCODE_NAME" --output json
    fi
}

# Every org of the channel approves the definition for its org (with its own package id)
# unless it already has; the definition is committed only when it is not yet.
#   committed at CHAINCODE_SEQUENCE or later: the committed version and sequence are
#     approved by the orgs whose approval is missing (an org added since, add-org.sh: its
#     peer serves and endorses the chaincode only once its org has approved);
#   not committed (or at an older sequence, an upgrade): the orgs that have not approved
#     CHAINCODE_VERSION at CHAINCODE_SEQUENCE (checkcommitreadiness) do, then it is committed.
# The policy is endorsement_policy_args' and there are no collections, as at the commit.
deploy_on() {
    local channel="$1" org id first definition approvals committed_sequence
    local version="$CHAINCODE_VERSION" sequence="$CHAINCODE_SEQUENCE" commit=true
    local -a orgs policy peers=()
    mapfile -t orgs < <(channel_orgs "$channel")
    mapfile -t policy < <(endorsement_policy_args "$channel")
    first="${orgs[0]}"
    for org in "${orgs[@]}"; do
        peers+=(--peerAddresses "$(peer_address "$org")" --tlsRootCertFiles "$(peer_tls_ca "$org")")
    done
    definition="$(committed_definition "$channel" "$first")"
    committed_sequence=0
    if [[ -n "$definition" ]]; then
        committed_sequence="$(jq -r '.sequence' <<<"$definition")"
    fi
    if (( committed_sequence >= CHAINCODE_SEQUENCE )); then
        version="$(jq -r '.version' <<<"$definition")"
        sequence="$committed_sequence"
        approvals="$(jq -c '.approvals // {}' <<<"$definition")"
        commit=false
        log "${CHAINCODE_NAME} ${version} is committed on ${channel} at sequence ${sequence}"
    else
        use_org "$first"
        approvals="$(retry peer lifecycle chaincode checkcommitreadiness --channelID "$channel" \
            --name "$CHAINCODE_NAME" --version "$version" --sequence "$sequence" \
            "${policy[@]}" --output json | jq -c '.approvals // {}')"
    fi
    for org in "${orgs[@]}"; do
        if jq -e --arg msp "$(msp_id "$org")" '.[$msp] == true' <<<"$approvals" >/dev/null; then
            log "$(msp_id "$org") has approved ${CHAINCODE_NAME} ${version} (sequence ${sequence}) on ${channel}"
            continue
        fi
        id="$(cat "${CCID_DIR}/${org}.id")"
        use_org "$org"
        log "$(msp_id "$org") approves ${CHAINCODE_NAME} ${version} (sequence ${sequence}) on ${channel}"
        retry peer lifecycle chaincode approveformyorg "${orderer_args[@]}" \
            --channelID "$channel" --name "$CHAINCODE_NAME" --version "$version" \
            --package-id "$id" --sequence "$sequence" "${policy[@]}"
    done
    if [[ "$commit" == false ]]; then
        return 0
    fi
    use_org "$first"
    log "committing ${CHAINCODE_NAME} ${version} (sequence ${sequence}) on ${channel}"
    retry peer lifecycle chaincode commit "${orderer_args[@]}" --channelID "$channel" \
        --name "$CHAINCODE_NAME" --version "$version" \
        --sequence "$sequence" "${policy[@]}" "${peers[@]}"
}

for org in $(org_keys); do
    install "$org"
done
for channel in $(all_channels); do
    deploy_on "$channel"
done
log "chaincode ${CHAINCODE_LABEL} committed and approved by every org on: $(all_channels | tr '\n' ' ')"
