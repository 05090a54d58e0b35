"""``/me`` and ``/users``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select

from fedledger.orgnode.auth import Admin, SessionDep, Viewer, new_token, token_sha256
from fedledger.orgnode.models import User
from fedledger.protocol.orgnode_api import Me, UserCreate, UserCreated, UserPublic
from fedledger.web.errors import Conflict

router = APIRouter(tags=["users"])


@router.get("/me")
def me(caller: Viewer, request: Request) -> Me:
    return Me.model_validate({"user": caller.name, "role": caller.role,
                              "org": request.app.state.node.settings.msp_id})


@router.post("/users", status_code=201)
def create_user(body: UserCreate, caller: Admin, session: SessionDep) -> UserCreated:
    if session.scalar(select(User).where(User.name == body.name)) is not None:
        raise Conflict(f"user {body.name!r} already exists")
    token = new_token()
    session.add(User(name=body.name, role=body.role, token_sha256=token_sha256(token)))
    session.commit()
    return UserCreated(name=body.name, role=body.role, token=token)


@router.get("/users")
def list_users(caller: Admin, session: SessionDep) -> list[UserPublic]:
    return [UserPublic.model_validate({"name": u.name, "role": u.role,
                                       "created": u.created_at.isoformat()})
            for u in session.scalars(select(User).order_by(User.id))]
