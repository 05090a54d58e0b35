"""A real org node served over HTTP (uvicorn thread, its lifespan, the embedded network of
``tests/orgnode/conftest.py``) with some content: an uploaded dataset, data subjects, a
filed deletion request and a job row; shared by the client tests and the test of a
generated client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fedledger.devnet.network import EmbeddedNetwork
from fedledger.orgnode.app import create_app
from fedledger.orgnode.models import Job
from fedledger.web.server import ThreadedServer
from tests.orgnode.conftest import node_settings

ROWS = [{"id": f"u-{i:02d}", "text": f"the flight was {'great' if i % 2 else 'late'} #{i}",
         "label": "positive" if i % 2 else "negative"} for i in range(12)]
DATASET = "people"
SUBJECT = "alice"
SUBJECT_SAMPLES = ["u-03", "u-05"]
JOB_ROUND = 7


@dataclass
class ServedNode:
    url: str
    msp_id: str
    upload: Path           # the uploaded dataset file


@contextmanager
def served_node(devnet: EmbeddedNetwork, org: str, data_dir: Path) -> Iterator[ServedNode]:
    """The org node of ``org`` on a loopback port, its worker off (no coordinator), with
    one job of round ``JOB_ROUND`` in its database."""
    settings = node_settings(devnet, org, data_dir, shards=2)
    app = create_app(settings, start_worker=False)
    server = ThreadedServer(app).start()
    try:
        with app.state.node.sessions() as session:
            session.add(Job(round_id=JOB_ROUND, status="attested", progress=1.0,
                            update_hash="ab" * 32, num_samples=12,
                            metrics={"mean_loss": 1.5, "global_accuracy": 0.5},
                            round={"round_id": JOB_ROUND}, datasets={DATASET: 12}))
            session.commit()
        upload = data_dir / "people.jsonl"
        upload.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
        yield ServedNode(server.url, settings.msp_id, upload)
    finally:
        server.stop()
