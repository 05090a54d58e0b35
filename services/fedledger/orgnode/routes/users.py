"""``/me`` and ``/users``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from fedledger.orgnode.auth import Admin, SessionDep, Viewer, new_token, token_sha256
from fedledger.orgnode.models import User
from fedledger.web.errors import Conflict

router = APIRouter(tags=["users"])


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@-]+$")
    role: Literal["admin", "auditor", "viewer"]


@router.get("/me")
def me(caller: Viewer, request: Request) -> dict[str, str]:
    return {"user": caller.name, "role": caller.role, "org": request.app.state.node.settings.msp_id}


@router.post("/users", status_code=201)
def create_user(body: UserCreate, caller: Admin, session: SessionDep) -> dict[str, str]:
    if session.scalar(select(User).where(User.name == body.name)) is not None:
        raise Conflict(f"user {body.name!r} already exists")
    token = new_token()
    session.add(User(name=body.name, role=body.role, token_sha256=token_sha256(token)))
    session.commit()
    return {"name": body.name, "role": body.role, "token": token}


@router.get("/users")
def list_users(caller: Admin, session: SessionDep) -> list[dict[str, str]]:
    return [{"name": u.name, "role": u.role, "created": u.created_at.isoformat()}
            for u in session.scalars(select(User).order_by(User.id))]
