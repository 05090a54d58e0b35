#!/usr/bin/env bash
# Create every channel and join the orderer and the peers to it (channel participation
# API, no system channel). Idempotent: what exists is left as it is.
#   consortium      all orgs of FABRIC_ORGS
#   <org>-private   that org only
# The anchor peers are in the genesis blocks (AnchorPeers in configtx.yaml).
# shellcheck source=deploy/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

mkdir -p "$ARTIFACTS_DIR"

orderer_has_channel() {
    osnadmin channel list --channelID "$1" -o "$ORDERER_ADMIN_ADDRESS" \
        --ca-file "$ORDERER_TLS_CA" \
        --client-cert "${ORDERER_ADMIN_TLS_DIR}/client.crt" \
        --client-key "${ORDERER_ADMIN_TLS_DIR}/client.key" 2>/dev/null | grep -q "Status: 200"
}

peer_has_channel() {
    use_org "$1"
    peer channel list 2>/dev/null | grep -qx "$2"
}

create_channel() {
    local channel="$1" block org
    block="${ARTIFACTS_DIR}/${channel}.block"
    if [[ ! -f "$block" ]]; then
        log "genesis block of ${channel} (profile $(channel_profile "$channel"))"
        configtxgen -configPath "$FABRIC_CFG_DIR" -profile "$(channel_profile "$channel")" \
            -channelID "$channel" -outputBlock "$block"
    fi
    if orderer_has_channel "$channel"; then
        log "orderer already has ${channel}"
    else
        log "orderer joins ${channel}"
        retry osnadmin channel join --channelID "$channel" --config-block "$block" \
            -o "$ORDERER_ADMIN_ADDRESS" --ca-file "$ORDERER_TLS_CA" \
            --client-cert "${ORDERER_ADMIN_TLS_DIR}/client.crt" \
            --client-key "${ORDERER_ADMIN_TLS_DIR}/client.key"
    fi
    for org in $(channel_orgs "$channel"); do
        if peer_has_channel "$org" "$channel"; then
            log "$(peer_host "$org") already in ${channel}"
        else
            log "$(peer_host "$org") joins ${channel}"
            use_org "$org"
            retry peer channel join -b "$block"
        fi
    done
}

for channel in $(all_channels); do
    create_channel "$channel"
done
log "channels ready: $(all_channels | tr '\n' ' ')"
