"""A channel's config block: block 0 of every channel, in the shape configtxgen writes.

A Fabric channel starts from its genesis block (``configtxgen -outputBlock``, then
``osnadmin channel join`` and ``peer channel join``): one ``CONFIG`` transaction whose
payload is a ``common.ConfigEnvelope`` holding the channel's ``common.Config``. The dev
peer writes the same for each channel of ``network.json`` when it first creates the
channel, so block numbers and event replay are a real channel's: the first transaction
is in block 1 and a fresh channel's height is 1.

What the config holds, as ``deploy/fabric/configtx.yaml`` and configtxgen make it
(``common/genesis``, ``internal/configtxgen/encoder``):

``/Channel``
    values ``HashingAlgorithm`` (SHA256), ``BlockDataHashingStructure``,
    ``OrdererAddresses``, ``Capabilities`` (V2_0); policies Readers, Writers (ANY),
    Admins (MAJORITY)
``/Channel/Orderer``
    values ``BatchSize``, ``BatchTimeout`` (the :class:`OrdererSettings` the dev orderer
    cuts by), ``Capabilities``; one group for the orderer org (its ``MSP`` and
    ``Endpoints``); policies Readers, Writers, Admins, BlockValidation
``/Channel/Application``
    one group per member org, keyed by its MSP id, with its ``MSP`` (a
    ``msp.FabricMSPConfig``: root, intermediate, TLS and admin certificates, NodeOUs) and
    its Readers / Writers / Admins / Endorsement policies; values ``Capabilities`` (V2_5);
    policies Readers, Writers, Admins, LifecycleEndorsement, Endorsement

Left out, by design: ``ConsensusType`` (the dev orderer is one in-process block cutter,
not etcdraft), ACLs (Fabric's defaults apply) and anchor peers (no gossip). The block is
built from the official ``fabric_protos`` messages only; :func:`read_config_block` reads
one back, from the dev peer or from ``configtxgen``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fabric_protos.common import (
    common_pb2,
    configtx_pb2,
    configuration_pb2,
    policies_pb2,
)
from fabric_protos.msp import msp_config_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_configuration_pb2
from google.protobuf.message import DecodeError, Message

from fedledger.devnet.blocks import (
    MalformedTransactionError,
    is_config_block,
    new_block,
    parse_envelope_header,
)
from fedledger.devnet.channel import ChannelDefinition
from fedledger.devnet.orderer import OrdererSettings, format_duration, parse_duration
from fedledger.devnet.policy import parse_policy, signature_policy_envelope
from fedledger.fabric import protos
from fedledger.fabric.msp import MSP

__all__ = [
    "ORDERER_ORG",
    "ChannelConfig",
    "fabric_msp_config",
    "genesis_block",
    "read_config_block",
]

ORDERER_ORG = "OrdererOrg"     # the orderer org's group name in configtx.yaml
ADMINS = "Admins"              # mod_policy of every element, as configtxgen sets it
_MAX_UINT32 = 2**32 - 1
_ROLE_OU_FIELDS = {"client": "client_ou_identifier", "peer": "peer_ou_identifier",
                   "admin": "admin_ou_identifier", "orderer": "orderer_ou_identifier"}
_IMPLICIT_RULES = policies_pb2.ImplicitMetaPolicy.Rule


@dataclass(frozen=True)
class ChannelConfig:
    """What a config block says about its channel, read back."""

    channel_id: str
    sequence: int
    orgs: dict[str, msp_config_pb2.FabricMSPConfig]   # application orgs: MSP id -> MSP
    orderer: OrdererSettings
    config: configtx_pb2.Config


# -- building ------------------------------------------------------------------------------

def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def fabric_msp_config(msp: MSP) -> msp_config_pb2.MSPConfig:
    """The verifying ``msp.MSPConfig`` of an org (what ``configtxgen`` reads from its
    MSP folder): certificates as PEM, NodeOUs, SHA-256 identity hashing."""
    config = msp_config_pb2.FabricMSPConfig(
        name=msp.msp_id,
        root_certs=[_pem(c) for c in msp.root_certs],
        intermediate_certs=[_pem(c) for c in msp.intermediate_certs],
        admins=[_pem(c) for c in msp.admin_certs],
        tls_root_certs=[_pem(c) for c in msp.tls_root_certs],
        tls_intermediate_certs=[_pem(c) for c in msp.tls_intermediate_certs],
        crypto_config=msp_config_pb2.FabricCryptoConfig(
            signature_hash_family="SHA2", identity_identifier_hash_function="SHA256"),
    )
    for ident in msp.ou_identifiers:
        config.organizational_unit_identifiers.append(msp_config_pb2.FabricOUIdentifier(
            organizational_unit_identifier=ident.ou,
            certificate=_pem(ident.certificate) if ident.certificate is not None else b""))
    if msp.node_ous.enabled:
        config.fabric_node_ous.enable = True
        for role, ident in msp.node_ous.identifiers.items():
            getattr(config.fabric_node_ous, _ROLE_OU_FIELDS[role]).CopyFrom(
                msp_config_pb2.FabricOUIdentifier(
                    organizational_unit_identifier=ident.ou,
                    certificate=_pem(ident.certificate) if ident.certificate is not None
                    else b""))
    return msp_config_pb2.MSPConfig(type=0, config=config.SerializeToString())  # 0: FABRIC


def _value(group: configtx_pb2.ConfigGroup, name: str, message: Message) -> None:
    group.values[name].CopyFrom(configtx_pb2.ConfigValue(
        value=message.SerializeToString(), mod_policy=ADMINS))


def _implicit(group: configtx_pb2.ConfigGroup, name: str, rule: str, sub_policy: str) -> None:
    meta = policies_pb2.ImplicitMetaPolicy(sub_policy=sub_policy, rule=_IMPLICIT_RULES.Value(rule))
    group.policies[name].CopyFrom(configtx_pb2.ConfigPolicy(
        policy=policies_pb2.Policy(type=policies_pb2.Policy.IMPLICIT_META,
                                   value=meta.SerializeToString()),
        mod_policy=ADMINS))


def _signature(group: configtx_pb2.ConfigGroup, name: str, rule: str) -> None:
    envelope = signature_policy_envelope(parse_policy(rule))
    group.policies[name].CopyFrom(configtx_pb2.ConfigPolicy(
        policy=policies_pb2.Policy(type=policies_pb2.Policy.SIGNATURE,
                                   value=envelope.SerializeToString()),
        mod_policy=ADMINS))


def _capabilities(group: configtx_pb2.ConfigGroup, name: str) -> None:
    caps = configuration_pb2.Capabilities()
    caps.capabilities[name].CopyFrom(configuration_pb2.Capability())
    _value(group, "Capabilities", caps)


def _org_group(msp: MSP, *, orderer: bool) -> configtx_pb2.ConfigGroup:
    """An org's group, with configtx.yaml's policies for a peer org or the orderer org."""
    group = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _value(group, "MSP", fabric_msp_config(msp))
    m = msp.msp_id
    if orderer:
        _signature(group, "Readers", f"OR('{m}.member')")
        _signature(group, "Writers", f"OR('{m}.member')")
        _signature(group, "Admins", f"OR('{m}.admin')")
    else:
        _signature(group, "Readers", f"OR('{m}.admin', '{m}.peer', '{m}.client')")
        _signature(group, "Writers", f"OR('{m}.admin', '{m}.client')")
        _signature(group, "Admins", f"OR('{m}.admin')")
        _signature(group, "Endorsement", f"OR('{m}.peer')")
    return group


def genesis_block(channel: ChannelDefinition, *, msps: Mapping[str, MSP], orderer_msp: MSP,
                  orderer: OrdererSettings, orderer_addresses: Sequence[str]
                  ) -> common_pb2.Block:
    """Block 0 of ``channel``: its config block. ``msps`` holds (at least) every member
    org's MSP; ``orderer_msp`` is the orderer org's."""
    missing = [m for m in channel.members if m not in msps]
    if missing:
        raise ValueError(f"channel {channel.name}: no MSP for members {missing}")

    root = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _value(root, "HashingAlgorithm", configuration_pb2.HashingAlgorithm(name="SHA256"))
    _value(root, "BlockDataHashingStructure",
           configuration_pb2.BlockDataHashingStructure(width=_MAX_UINT32))
    _value(root, "OrdererAddresses",
           configuration_pb2.OrdererAddresses(addresses=list(orderer_addresses)))
    _capabilities(root, "V2_0")
    _implicit(root, "Readers", "ANY", "Readers")
    _implicit(root, "Writers", "ANY", "Writers")
    _implicit(root, "Admins", "MAJORITY", "Admins")

    ordering = root.groups["Orderer"]
    ordering.mod_policy = ADMINS
    _value(ordering, "BatchSize", orderer_configuration_pb2.BatchSize(
        max_message_count=orderer.max_message_count,
        absolute_max_bytes=orderer.absolute_max_bytes,
        preferred_max_bytes=orderer.preferred_max_bytes))
    _value(ordering, "BatchTimeout", orderer_configuration_pb2.BatchTimeout(
        timeout=format_duration(orderer.batch_timeout_s)))
    _value(ordering, "ChannelRestrictions", orderer_configuration_pb2.ChannelRestrictions())
    _capabilities(ordering, "V2_0")
    _implicit(ordering, "Readers", "ANY", "Readers")
    _implicit(ordering, "Writers", "ANY", "Writers")
    _implicit(ordering, "Admins", "MAJORITY", "Admins")
    _implicit(ordering, "BlockValidation", "ANY", "Writers")
    orderer_group = _org_group(orderer_msp, orderer=True)
    _value(orderer_group, "Endpoints",
           configuration_pb2.OrdererAddresses(addresses=list(orderer_addresses)))
    ordering.groups[ORDERER_ORG].CopyFrom(orderer_group)

    application = root.groups["Application"]
    application.mod_policy = ADMINS
    for member in channel.members:
        application.groups[member].CopyFrom(_org_group(msps[member], orderer=False))
    _capabilities(application, "V2_5")
    _implicit(application, "Readers", "ANY", "Readers")
    _implicit(application, "Writers", "ANY", "Writers")
    _implicit(application, "Admins", "MAJORITY", "Admins")
    _implicit(application, "LifecycleEndorsement", "MAJORITY", "Endorsement")
    _implicit(application, "Endorsement", "MAJORITY", "Endorsement")

    # As common/genesis: a CONFIG channel header (version 1, epoch 0) and a signature
    # header with no creator; the tx id is sha256(nonce), the envelope is unsigned.
    nonce = protos.new_nonce()
    timestamp = protos.timestamp_now()
    timestamp.nanos = 0
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.HeaderType.CONFIG, version=1, channel_id=channel.name,
        tx_id=protos.transaction_id(nonce, b""), timestamp=timestamp, epoch=0)
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=channel_header.SerializeToString(),
            signature_header=common_pb2.SignatureHeader(nonce=nonce).SerializeToString()),
        data=configtx_pb2.ConfigEnvelope(
            config=configtx_pb2.Config(sequence=0, channel_group=root)).SerializeToString())
    envelope = common_pb2.Envelope(payload=payload.SerializeToString())
    block = new_block(0, b"", [envelope.SerializeToString()])
    last_config = common_pb2.LastConfig(index=0)
    block.metadata.metadata[common_pb2.BlockMetadataIndex.LAST_CONFIG] = common_pb2.Metadata(
        value=last_config.SerializeToString()).SerializeToString()
    block.metadata.metadata[common_pb2.BlockMetadataIndex.SIGNATURES] = common_pb2.Metadata(
        value=common_pb2.OrdererBlockMetadata(last_config=last_config).SerializeToString()
    ).SerializeToString()
    return block


# -- reading -------------------------------------------------------------------------------

def _decode(message_type: type, data: bytes, what: str):  # noqa: ANN202
    message = message_type()
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, TypeError) as exc:
        raise MalformedTransactionError(f"{what} does not decode: {exc}") from exc
    return message


def read_config_block(block: common_pb2.Block) -> ChannelConfig:
    """The channel, members and orderer settings a config block holds;
    ``MalformedTransactionError`` if it is not a config block."""
    if not is_config_block(block):
        raise MalformedTransactionError("not a config block (one CONFIG transaction)")
    header = parse_envelope_header(block.data.data[0])
    payload = _decode(common_pb2.Payload, header.payload, "config payload")
    envelope = _decode(configtx_pb2.ConfigEnvelope, payload.data, "config envelope")
    config = envelope.config
    group = config.channel_group
    for needed in ("Application", "Orderer"):
        if needed not in group.groups:
            raise MalformedTransactionError(f"the config has no {needed} group")
    orgs = {}
    for name, org in group.groups["Application"].groups.items():
        if "MSP" not in org.values:
            raise MalformedTransactionError(f"application org {name} has no MSP value")
        msp = _decode(msp_config_pb2.MSPConfig, org.values["MSP"].value, f"MSP of {name}")
        fabric = _decode(msp_config_pb2.FabricMSPConfig, msp.config, f"MSP config of {name}")
        orgs[fabric.name] = fabric
    ordering = group.groups["Orderer"].values
    if "BatchSize" not in ordering or "BatchTimeout" not in ordering:
        raise MalformedTransactionError("the Orderer group has no BatchSize or BatchTimeout")
    size = _decode(orderer_configuration_pb2.BatchSize, ordering["BatchSize"].value,
                   "BatchSize")
    timeout = _decode(orderer_configuration_pb2.BatchTimeout, ordering["BatchTimeout"].value,
                      "BatchTimeout")
    try:
        settings = OrdererSettings(batch_timeout_s=parse_duration(timeout.timeout),
                                   max_message_count=size.max_message_count,
                                   preferred_max_bytes=size.preferred_max_bytes,
                                   absolute_max_bytes=size.absolute_max_bytes)
    except ValueError as exc:
        raise MalformedTransactionError(f"invalid orderer settings: {exc}") from exc
    return ChannelConfig(channel_id=header.channel_id, sequence=config.sequence, orgs=orgs,
                         orderer=settings, config=config)
