"""What an org node states about one sample and one model version: shared by the org
node's API (which answers it) and the auditor's bundle checks (which verify it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

HEX64 = r"^[0-9a-f]{64}$"


class SampleEvidence(BaseModel):
    """One sample against one model version's commitment of its (dataset, shard, slice)."""

    model_config = ConfigDict(extra="forbid")

    org: str
    dataset_id: str
    sample_id: str
    shard: int = Field(ge=0)
    slice: int = Field(ge=0)
    member: bool
    #: the commitment root the version lists for (org, dataset, shard, slice); None when
    #: it lists none (the version never trained on that shard of the dataset)
    root: str | None = Field(None, pattern=HEX64)
    salt: str | None = Field(None, pattern=r"^[0-9a-f]*$")
    proof: dict[str, Any] | None = None
