"""Block 0 of a channel is its config block, shaped as configtxgen's genesis block: one
CONFIG transaction carrying a ConfigEnvelope whose Config names the member orgs' MSPs
and the orderer's BatchSize / BatchTimeout."""

from __future__ import annotations

import hashlib

import pytest
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.msp import msp_config_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_configuration_pb2

from fedledger.devnet.blocks import (
    MalformedTransactionError,
    block_data_hash,
    is_config_block,
    new_block,
)
from fedledger.devnet.ca import write_network_crypto
from fedledger.devnet.channel import ChannelDefinition
from fedledger.devnet.configblock import ORDERER_ORG, genesis_block, read_config_block
from fedledger.devnet.orderer import OrdererSettings
from fedledger.fabric.msp import MSP

CHANNEL = ChannelDefinition(name="consortium", members=("Org1MSP", "Org2MSP"))
SETTINGS = OrdererSettings.deployment()


@pytest.fixture(scope="module")
def crypto(tmp_path_factory):
    return write_network_crypto(tmp_path_factory.mktemp("crypto"), ["Org1", "Org2", "Org3"])


@pytest.fixture(scope="module")
def block(crypto) -> common_pb2.Block:
    msps = {o.msp_id: MSP.from_dir(o.msp_dir, o.msp_id) for o in crypto.all_orgs()}
    return genesis_block(CHANNEL, msps=msps, orderer_msp=msps["OrdererMSP"], orderer=SETTINGS,
                         orderer_addresses=["orderer.example.com:7050"])


def config_of(block: common_pb2.Block) -> tuple[common_pb2.ChannelHeader, configtx_pb2.Config]:
    envelope = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(envelope.payload)
    header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    return header, configtx_pb2.ConfigEnvelope.FromString(payload.data).config


def test_block_zero_holds_one_config_transaction(block):
    assert block.header.number == 0 and block.header.previous_hash == b""
    assert block.header.data_hash == block_data_hash(block.data)
    assert len(block.data.data) == 1 and is_config_block(block, "consortium")
    envelope = common_pb2.Envelope.FromString(block.data.data[0])
    assert envelope.signature == b""   # as configtxgen's: unsigned
    payload = common_pb2.Payload.FromString(envelope.payload)
    header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
    assert header.type == common_pb2.HeaderType.CONFIG
    assert (header.channel_id, header.version, header.epoch) == ("consortium", 1, 0)
    assert signature_header.creator == b""
    assert header.tx_id == hashlib.sha256(signature_header.nonce).hexdigest()
    last_config = common_pb2.Metadata.FromString(
        block.metadata.metadata[common_pb2.BlockMetadataIndex.LAST_CONFIG])
    assert common_pb2.LastConfig.FromString(last_config.value).index == 0


def test_the_application_group_holds_each_members_msp(block, crypto):
    _, config = config_of(block)
    assert config.sequence == 0
    application = config.channel_group.groups["Application"]
    assert sorted(application.groups) == ["Org1MSP", "Org2MSP"]   # members only
    for msp_id in CHANNEL.members:
        org = application.groups[msp_id]
        msp = msp_config_pb2.MSPConfig.FromString(org.values["MSP"].value)
        assert msp.type == 0   # FABRIC
        fabric = msp_config_pb2.FabricMSPConfig.FromString(msp.config)
        msp_dir = crypto.org(msp_id).msp_dir
        assert fabric.name == msp_id
        assert list(fabric.root_certs) == [p.read_bytes()
                                           for p in sorted((msp_dir / "cacerts").iterdir())]
        assert list(fabric.tls_root_certs) == [p.read_bytes()
                                               for p in sorted((msp_dir / "tlscacerts").iterdir())]
        assert fabric.fabric_node_ous.enable
        assert fabric.fabric_node_ous.peer_ou_identifier.organizational_unit_identifier == "peer"
        assert sorted(org.policies) == ["Admins", "Endorsement", "Readers", "Writers"]
        assert org.policies["Endorsement"].policy.type == policies_pb2.Policy.SIGNATURE
    meta = policies_pb2.ImplicitMetaPolicy.FromString(
        application.policies["Endorsement"].policy.value)
    assert (meta.rule, meta.sub_policy) == (policies_pb2.ImplicitMetaPolicy.MAJORITY,
                                            "Endorsement")


def test_the_orderer_group_holds_the_batch_settings(block):
    _, config = config_of(block)
    ordering = config.channel_group.groups["Orderer"]
    size = orderer_configuration_pb2.BatchSize.FromString(ordering.values["BatchSize"].value)
    timeout = orderer_configuration_pb2.BatchTimeout.FromString(
        ordering.values["BatchTimeout"].value)
    assert (size.max_message_count, size.preferred_max_bytes, size.absolute_max_bytes) == (
        100, 512 * 1024, 99 * 1024 * 1024)
    assert timeout.timeout == "250ms"
    assert list(ordering.groups) == [ORDERER_ORG]
    orderer_msp = msp_config_pb2.FabricMSPConfig.FromString(msp_config_pb2.MSPConfig.FromString(
        ordering.groups[ORDERER_ORG].values["MSP"].value).config)
    assert orderer_msp.name == "OrdererMSP"


def test_a_config_block_reads_back(block):
    config = read_config_block(block)
    assert config.channel_id == "consortium" and config.sequence == 0
    assert sorted(config.orgs) == ["Org1MSP", "Org2MSP"]
    assert config.orderer == SETTINGS


def test_a_transaction_block_is_not_a_config_block():
    block = new_block(1, b"\x00" * 32, [b"not an envelope"])
    assert not is_config_block(block)
    with pytest.raises(MalformedTransactionError):
        read_config_block(block)


def test_every_channel_of_the_dev_network_starts_with_its_config_block(devnet):
    for name, runtime in devnet.network.peer.channels.items():
        config = read_config_block(runtime.ledger.block(0))
        assert config.channel_id == name
        assert sorted(config.orgs) == sorted(runtime.policies.definition.members)
        assert config.orderer == devnet.network.orderer
