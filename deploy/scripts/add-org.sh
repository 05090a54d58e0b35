#!/usr/bin/env bash
# Add an org to the running network (run in the fabric-tools container, after its crypto
# material exists and configtx.yaml defines it, see docs/deploy.md):
#   docker compose run --rm network bash /etc/fedledger/scripts/add-org.sh org4
# FABRIC_ORGS must already list it (e.g. "... org4:13051"), its peer must be running.
#   1. the consortium channel's config gains the org (its MSP, policies, anchor peer),
#      signed by a majority of the current orgs' admins (the channel's Admins policy);
#   2. its private channel is created (profile Org4PrivateChannel) and joined;
#   3. its peer joins the consortium channel;
#   4. chaincode.sh installs the chaincode on its peer; the org approves the definition
#      already committed on the consortium channel (same sequence) and the one of its
#      private channel, which is then committed.
# shellcheck source=deploy/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[[ $# -eq 1 ]] || die "usage: add-org.sh ORG (e.g. org4)"
new="$1"
peer_port "$new" >/dev/null
mapfile -t current < <(org_keys | grep -vx "$new")
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

use_org "${current[0]}"
peer channel fetch config "$work/config.pb" -o "$ORDERER_ADDRESS" \
    --ordererTLSHostnameOverride "$ORDERER_HOST" -c "$CONSORTIUM_CHANNEL" --tls \
    --cafile "$ORDERER_TLS_CA"
configtxlator proto_decode --input "$work/config.pb" --type common.Block \
    | jq '.data.data[0].payload.data.config' > "$work/config.json"
msp="$(msp_id "$new")"
if jq -e --arg msp "$msp" '.channel_group.groups.Application.groups[$msp]' \
        "$work/config.json" >/dev/null; then
    log "${msp} is already a member of ${CONSORTIUM_CHANNEL}"
else
    configtxgen -configPath "$FABRIC_CFG_DIR" -printOrg "$msp" > "$work/org.json"
    anchor="$(peer_address "$new")"   # what the other orgs' peers dial (gossip, discovery)
    jq -s --arg msp "$msp" --arg host "${anchor%:*}" --argjson port "${anchor##*:}" '
        .[0] * {"channel_group": {"groups": {"Application": {"groups": {($msp): (.[1]
          | .values += {"AnchorPeers": {"mod_policy": "Admins", "version": "0",
              "value": {"anchor_peers": [{"host": $host, "port": $port}]}}})}}}}}' \
        "$work/config.json" "$work/org.json" > "$work/modified.json"
    configtxlator proto_encode --input "$work/config.json" --type common.Config --output "$work/old.pb"
    configtxlator proto_encode --input "$work/modified.json" --type common.Config --output "$work/new.pb"
    configtxlator compute_update --channel_id "$CONSORTIUM_CHANNEL" --original "$work/old.pb" \
        --updated "$work/new.pb" --output "$work/update.pb"
    configtxlator proto_decode --input "$work/update.pb" --type common.ConfigUpdate \
        | jq --arg ch "$CONSORTIUM_CHANNEL" '{"payload": {"header": {"channel_header":
            {"channel_id": $ch, "type": 2}}, "data": {"config_update": .}}}' > "$work/envelope.json"
    configtxlator proto_encode --input "$work/envelope.json" --type common.Envelope \
        --output "$work/envelope.pb"
    # MAJORITY Admins: the submitter signs too, so majority - 1 other signatures.
    needed=$(( (${#current[@]} / 2) + 1 ))
    for org in "${current[@]:1:needed-1}"; do
        use_org "$org"
        peer channel signconfigtx -f "$work/envelope.pb"
    done
    use_org "${current[0]}"
    peer channel update -f "$work/envelope.pb" -c "$CONSORTIUM_CHANNEL" -o "$ORDERER_ADDRESS" \
        --ordererTLSHostnameOverride "$ORDERER_HOST" --tls --cafile "$ORDERER_TLS_CA"
    log "${msp} added to ${CONSORTIUM_CHANNEL}"
fi

# The consortium's current config block is what a new member joins from.
use_org "$new"
if ! peer channel list 2>/dev/null | grep -qx "$CONSORTIUM_CHANNEL"; then
    retry peer channel fetch 0 "$work/consortium-0.block" -o "$ORDERER_ADDRESS" \
        --ordererTLSHostnameOverride "$ORDERER_HOST" -c "$CONSORTIUM_CHANNEL" --tls \
        --cafile "$ORDERER_TLS_CA"
    retry peer channel join -b "$work/consortium-0.block"
fi
bash "$(dirname "$0")/channels.sh"
bash "$(dirname "$0")/chaincode.sh"
log "$(msp_id "$new") is in the network; start its chaincode and org node containers"
