"""Path parameters shared by the services: ids that fit the databases' 64-bit integers
(a larger number is a 422 naming the parameter, not an overflow deep in the driver)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_DB_INT = 2**63 - 1

RoundId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="round id (1, 2, ...)")]
RecordId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="record id")]
