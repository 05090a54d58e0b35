"""fedledger.errors: the one root, its str() and the packages' roots below it."""

from __future__ import annotations

import pickle

import pytest

from fedledger.bridge.errors import BridgeError
from fedledger.errors import ContextField, FedLedgerError
from fedledger.evm.errors import ChainIdMismatchError, EvmError, RevertError
from fedledger.fabric.errors import CommitError, ErrorDetail, FabricError
from fedledger.incentives.errors import IncentivesError
from fedledger.learning.errors import DatasetError, LearningError
from fedledger.merkle import MerkleError
from fedledger.web.errors import NotFound, ServiceError


class TxError(FedLedgerError):
    tx_id = ContextField()

    def __init__(self, message: str, *, tx_id: str | None = None, step: str | None = None) -> None:
        super().__init__(message, step=step, context={"tx_id": tx_id})


def test_str_appends_step_then_context_in_order():
    exc = FedLedgerError("no receipt", step="confirm", context={"tx_hash": "0xab", "block": 7})
    assert str(exc) == "no receipt step=confirm tx_hash=0xab block=7"
    assert exc.message == "no receipt" and exc.step == "confirm"
    assert exc.context == {"tx_hash": "0xab", "block": 7}


def test_str_leaves_out_empty_entries():
    exc = FedLedgerError("boom", context={"tx_id": None, "rounds": (), "name": ""})
    assert str(exc) == "boom"
    assert str(FedLedgerError()) == ""


def test_plain_error_reads_like_the_builtin():
    assert str(FedLedgerError("just this")) == "just this"
    assert FedLedgerError("just this").args == ("just this",)


def test_context_field_reads_and_writes_the_context():
    exc = TxError("failed", step="endorse")
    assert exc.tx_id is None and str(exc) == "failed step=endorse"
    exc.tx_id = "abc"  # set after the error was made: str() shows it
    assert exc.context["tx_id"] == "abc"
    assert str(exc) == "failed step=endorse tx_id=abc"
    assert isinstance(TxError.tx_id, ContextField)


def test_pickles_with_keyword_only_and_required_arguments():
    exc = CommitError("invalid", code="MVCC_READ_CONFLICT", tx_id="t1", block_number=4)
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is CommitError
    assert (again.code, again.block_number, again.tx_id, again.step) == (
        "MVCC_READ_CONFLICT", 4, "t1", "commit")
    assert str(again) == str(exc) == "invalid step=commit tx_id=t1"


@pytest.mark.parametrize("root", [FabricError, EvmError, BridgeError, ServiceError, LearningError,
                                  IncentivesError, MerkleError])
def test_package_roots_are_fedledger_errors(root):
    assert issubclass(root, FedLedgerError)


def test_package_errors_keep_their_words():
    fabric = FabricError("endorse failed", tx_id="t9", step="endorse",
                         details=[ErrorDetail("peer0:7051", "Org1MSP", "chaincode said no")])
    assert str(fabric) == "endorse failed step=endorse tx_id=t9 [Org1MSP@peer0:7051: chaincode said no]"
    assert str(EvmError("gone", tx_hash="0x1", step="receipt")) == "gone step=receipt tx_hash=0x1"
    assert str(ChainIdMismatchError(1, 2)) == (
        "chain id mismatch: configured 1, node reports 2 step=connect")
    bridge = BridgeError("refused", step="anchor", tx_hash="0xff")
    bridge.rounds = (3, 5)
    assert str(bridge) == "refused step=anchor rounds=3..5 tx_hash=0xff"
    assert str(NotFound("no such round")) == "no such round"
    revert = RevertError("Error", ("nope",), arg_names=("reason",), step="call")
    assert str(revert) == "execution reverted: nope step=call" and revert.args == ("nope",)
    assert isinstance(DatasetError("bad"), ValueError)
