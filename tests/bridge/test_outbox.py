"""The bridge's outbox on SQLite and on the real PostgreSQL server: state survives a
restart (a new Outbox on the same URL), one anchor per first round, checkpoints."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from fedledger.bridge.outbox import Anchor, AnchorStatus, FinalRound, Outbox


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    return request.getfixturevalue("postgres_url")


def test_state_survives_a_restart(url):
    outbox = Outbox(url)
    with outbox.session() as s:
        s.add(FinalRound(round_id=1, aggregate_digest="ab" * 32))
        outbox.save_checkpoint(s, "events", 7, "tx-7")
    with outbox.session() as s:
        anchor = Anchor(first_round=1, last_round=1, root="cd" * 32, leaves_json="[]",
                        status=AnchorStatus.BUILT)
        s.add(anchor)
    outbox.update(anchor.id, raw_tx=b"\x02\xf8\x00signed", tx_hash="0x" + "ef" * 32,
                  status=AnchorStatus.PREPARED)
    outbox.engine.dispose()

    again = Outbox(url)
    assert again.checkpoint("events") == (7, "tx-7")
    [restored] = again.unfinished()
    assert (restored.status, restored.raw_tx, restored.tx_hash) == (
        AnchorStatus.PREPARED, b"\x02\xf8\x00signed", "0x" + "ef" * 32)
    assert [r.round_id for r in again.pending_rounds()] == [1]
    assert again.anchor_for_round(1).id == restored.id and again.anchor_for_round(2) is None
    again.engine.dispose()


def test_one_anchor_per_first_round(url):
    outbox = Outbox(url)
    with outbox.session() as s:
        s.add(Anchor(first_round=3, last_round=4, root="00" * 32, leaves_json="[]",
                     status=AnchorStatus.BUILT))
    with pytest.raises(IntegrityError), outbox.session() as s:
        s.add(Anchor(first_round=3, last_round=3, root="11" * 32, leaves_json="[]",
                     status=AnchorStatus.BUILT))
    assert [(a.first_round, a.root) for a in outbox.anchors()] == [(3, "00" * 32)]
    outbox.engine.dispose()
