"""Path parameters shared by the services: ids that fit the databases' 64-bit integers
(a larger number is a 422 naming the parameter, not an overflow deep in the driver)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_DB_INT = 2**63 - 1

RoundId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="round id (1, 2, ...)")]
RecordId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="record id")]

#: Ids of ledger records (request, dataset, model version, subject ids): the chaincode's
#: ``Id`` pattern, so a malformed one is a 422 here, not a ledger error.
ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
#: Sample ids (the chaincode's ``SampleId``): printable text without control characters.
SAMPLE_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,256}$"
LedgerId = Annotated[str, Path(pattern=ID_PATTERN, description="record id")]
