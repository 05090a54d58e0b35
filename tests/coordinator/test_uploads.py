"""PUT /rounds/{id}/updates: every refusal is a clear 4xx and leaves no blob and no row."""

from __future__ import annotations

import hashlib

import pytest
import torch
from sqlalchemy import func, select

from fedledger.coordinator.models import BlobRow, SubmissionRow
from fedledger.digests import sha256_hex

from .conftest import make_update, open_round, upload


def stored(client) -> tuple[list[str], int, int]:
    service = client.app.state.service
    with service.sessions() as session:
        rows = session.scalar(select(func.count()).select_from(SubmissionRow))
        blobs = session.scalar(select(func.count()).select_from(BlobRow))
    files = sorted(p.name for p in service.blobs.root.rglob("*") if p.is_file())
    return files, rows, blobs


@pytest.fixture()
def round_client(app_client):
    # Committee of two: one of the three orgs is left out (deterministic draw).
    client = app_client(committee_size=2)
    body = open_round(client, quorum=1)
    return client, body


def test_refused_uploads_change_nothing(round_client, devnet, context) -> None:
    client, body = round_client
    round_id = body["round_id"]
    member = body["committee"][0]
    outsider = next(m for m in ("Org1MSP", "Org2MSP", "Org3MSP") if m not in body["committee"])
    good = make_update(context.spec, seed=1)
    name = next(iter(context.spec.shapes))
    shape = context.spec.shapes[name]

    nan = torch.zeros(shape)
    nan[0, 0] = float("nan")
    cases = {
        "unsigned": (upload(client, devnet, member, round_id, good, signed=False), 401,
                     "unauthorized", "unsigned request"),
        "tampered": (upload(client, devnet, member, round_id, good[:-4] + b"\0\0\0\0",
                            declared=sha256_hex(good)), 400, "digest_mismatch", "differs"),
        "missing hash": (client.put(f"/rounds/{round_id}/updates", content=good), 400,
                         "missing_content_sha256", "X-Content-Sha256"),
        "oversized": (upload(client, devnet, member, round_id, good + b"\0" * 8192), 413,
                      "payload_too_large", "max_update_bytes"),
        "not in committee": (upload(client, devnet, outsider, round_id, good), 403, "forbidden",
                             "not in the committee"),
        "nan": (upload(client, devnet, member, round_id,
                       make_update(context.spec, seed=1, **{name: nan})), 400, "invalid_update",
                "non-finite"),
        "shape": (upload(client, devnet, member, round_id,
                         make_update(context.spec, seed=1, **{name: torch.zeros(shape[0] + 1, shape[1])})),
                  400, "invalid_update", "has shape"),
        "pickle": (upload(client, devnet, member, round_id, b"\x80\x04\x95" + b"\0" * 64), 400,
                   "invalid_update", "not a safetensors file"),
        "no round": (upload(client, devnet, member, round_id + 100, good), 404, "not_found",
                     f"round {round_id + 100} does not exist"),
    }
    for label, (response, status, code, text) in cases.items():
        assert response.status_code == status, (label, response.text)
        payload = response.json()
        assert payload["error"] == code, (label, payload)
        assert text in payload["message"], (label, payload)
        assert stored(client) == ([], 0, 0), label
    assert cases["nan"][0].json()["details"] == {"reason": "non_finite", "tensor": name}
    assert cases["shape"][0].json()["details"]["reason"] == "shape_mismatch"

    first = upload(client, devnet, member, round_id, good, num_samples=12)
    assert first.status_code == 201 and first.json() == {"update_hash": sha256_hex(good)}
    again = upload(client, devnet, member, round_id, good, num_samples=12)
    assert again.status_code == 200 and again.json() == {"update_hash": sha256_hex(good)}
    other = upload(client, devnet, member, round_id, make_update(context.spec, seed=2))
    assert other.status_code == 409
    assert f"already uploaded update {sha256_hex(good)}" in other.json()["message"]
    assert stored(client) == ([sha256_hex(good)], 1, 1)
    round_body = client.get(f"/rounds/{round_id}").json()
    assert round_body["submissions"] == [{"org": member, "update_hash": sha256_hex(good),
                                          "num_samples": 12, "on_ledger": False}]

    # A replayed signed request (same nonce) is refused.
    from fedledger.web.signing import sign_headers

    headers = sign_headers(devnet.network.identity(member), "GET", f"/blobs/{sha256_hex(good)}",
                           hashlib.sha256(b"").hexdigest())
    assert client.get(f"/blobs/{sha256_hex(good)}", headers=headers).status_code == 200
    replay = client.get(f"/blobs/{sha256_hex(good)}", headers=headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["message"]
