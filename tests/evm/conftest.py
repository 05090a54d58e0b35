"""EVM fixtures: the embedded chain (py-evm in process) and anvil (JSON-RPC, started from
``deploy/foundry`` on a free loopback port). Anvil tests SKIP when the binary is absent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account

from fedledger.evm import Chain, EmbeddedBackend, EvmConfig, RpcBackend

from ..anvil import (
    ANVIL_CHAIN_ID,
    ANVIL_DEV_KEYS,
    AnvilProcess,
    require_anvil,
    rpc_config,
)


@pytest.fixture
def start_anvil() -> Iterator:
    """Factory for private anvil processes (stopped at teardown)."""
    require_anvil()
    started: list[AnvilProcess] = []

    def start() -> AnvilProcess:
        node = AnvilProcess()
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilProcess]:
    require_anvil()
    node = AnvilProcess()
    yield node
    node.stop()


EMBEDDED_TEST_CONFIG = dict(poll_interval_s=0.02, receipt_timeout_s=20)


@pytest.fixture
def embedded_chain() -> Chain:
    return Chain(EmbeddedBackend(), EvmConfig(**EMBEDDED_TEST_CONFIG))


@pytest.fixture
def anvil_chain(anvil_node: AnvilProcess) -> Chain:
    return Chain(RpcBackend(anvil_node.url, ANVIL_CHAIN_ID, dev_keys=ANVIL_DEV_KEYS),
                 rpc_config(anvil_node.url))


@pytest.fixture(params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest) -> Chain:
    """The same test on both backends."""
    return request.getfixturevalue(f"{request.param}_chain")


def chain_with(chain: Chain, **overrides) -> Chain:
    """Another Chain over the same backend with config overrides (own nonce tracker)."""
    data = chain.config.model_dump()
    data.update(overrides)
    return Chain(chain.backend, EvmConfig(**data))


@pytest.fixture
def funder(chain: Chain):
    return chain.dev_accounts()[0]


def new_funded_accounts(chain: Chain, funder, n: int, value: int = 10**18) -> list:
    accounts = [Account.create() for _ in range(n)]
    for a in accounts:
        chain.transfer(funder, a.address, value)
    return accounts
