"""Admin API users: bearer tokens stored as sha256, one role each.

Roles, weakest first: ``viewer`` (datasets, jobs, models, policy), ``auditor`` (also the
org's private-ledger records and audit endpoints), ``admin`` (everything). Missing or
unknown token -> 401; a known token without the role -> 403.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from fedledger.orgnode.models import User
from fedledger.web.errors import Forbidden, Unauthorized

ROLES = ("viewer", "auditor", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


def get_session(request: Request) -> Iterator[Session]:
    """Dependency: a database session for the request."""
    with request.app.state.node.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def current_user(request: Request, session: SessionDep) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    user = session.scalar(select(User).where(User.token_sha256 == token_sha256(token.strip())))
    if user is None:
        raise Unauthorized("unknown or revoked token")
    return Caller(user.name, user.role)


def require(role: str) -> Callable[[Caller], Caller]:
    """Dependency: the caller holds ``role`` or a stronger one."""

    def check(caller: Annotated[Caller, Depends(current_user)]) -> Caller:
        if _RANK[caller.role] < _RANK[role]:
            raise Forbidden(f"{caller.role} {caller.name!r} may not do this: needs {role}")
        return caller

    return check


Viewer = Annotated[Caller, Depends(require("viewer"))]
Auditor = Annotated[Caller, Depends(require("auditor"))]
Admin = Annotated[Caller, Depends(require("admin"))]
