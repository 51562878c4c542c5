"""Account routes of the JSON API."""

import uuid
from typing import Any

from flask import Blueprint
from pydantic import ConfigDict, Field
from sqlmodel import SQLModel

from trials.core.accounts import services
from trials.core.accounts.auth import require_principal
from trials.core.accounts.models import (
    GrantCreate,
    GrantRead,
    SiteCreate,
    SiteRead,
    TrialRead,
    UserCreate,
    UserRead,
)
from trials.core.api import API_PREFIX, operation
from trials.core.db import db

bp = Blueprint("accounts_api", __name__, url_prefix=API_PREFIX)


class ReasonBody(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    reason: str = Field(min_length=1, max_length=2000)


class MeRead(SQLModel):
    username: str
    printed_name: str
    token_scope: str | None
    grants: list[GrantRead]


@operation(
    bp,
    "/me",
    summary="The token's user and their roles",
    tag="accounts",
    errors=(401,),
    response=MeRead,
)
def me() -> Any:
    principal = require_principal()
    user = services.get_user(principal.username, session=db.session)
    grants = services.grant_reads([user.id], session=db.session)[user.id]
    return MeRead(
        username=user.username,
        printed_name=user.printed_name,
        token_scope=principal.token_scope,
        grants=grants,
    )


@operation(bp, "/users", summary="List users (admin)", tag="accounts", response=list[UserRead])
def list_users() -> Any:
    return services.list_users(session=db.session, by=require_principal())


@operation(
    bp,
    "/users",
    method="POST",
    summary="Create a user (admin)",
    tag="accounts",
    body=UserCreate,
    response=UserRead,
    status=201,
    errors=(401, 403, 409),
)
def create_user(body: UserCreate) -> Any:
    principal = require_principal()
    user = services.create_user(body, session=db.session, by=principal)
    return services.user_read(user, [])


@operation(
    bp,
    "/users/<username>",
    summary="One user (admin)",
    tag="accounts",
    response=UserRead,
    errors=(401, 403, 404),
)
def get_user(username: str) -> Any:
    return services.describe_user(username, session=db.session, by=require_principal())


@operation(
    bp,
    "/users/<username>/grants",
    method="POST",
    summary="Grant a role (admin)",
    tag="accounts",
    body=GrantCreate,
    response=UserRead,
    status=201,
    errors=(401, 403, 404, 409),
)
def grant_role(username: str, body: GrantCreate) -> Any:
    principal = require_principal()
    services.grant_role(username, body, session=db.session, by=principal)
    return services.describe_user(username, session=db.session, by=principal)


@operation(
    bp,
    "/grants/<uuid:grant_id>/revoke",
    method="POST",
    summary="Revoke a role grant (admin)",
    tag="accounts",
    body=ReasonBody,
    status=204,
    errors=(401, 403, 404, 409),
)
def revoke_grant(grant_id: uuid.UUID, body: ReasonBody) -> Any:
    services.revoke_role(grant_id, session=db.session, by=require_principal(), reason=body.reason)


@operation(
    bp,
    "/users/<username>/disable",
    method="POST",
    summary="Disable an account (admin)",
    tag="accounts",
    body=ReasonBody,
    response=UserRead,
    errors=(401, 403, 404, 409),
)
def disable_user(username: str, body: ReasonBody) -> Any:
    principal = require_principal()
    services.set_active(username, False, session=db.session, by=principal, reason=body.reason)
    return services.describe_user(username, session=db.session, by=principal)


@operation(
    bp,
    "/users/<username>/unlock",
    method="POST",
    summary="Unlock a locked account (admin)",
    tag="accounts",
    body=ReasonBody,
    response=UserRead,
    errors=(401, 403, 404, 409),
)
def unlock_user(username: str, body: ReasonBody) -> Any:
    principal = require_principal()
    services.unlock(username, session=db.session, by=principal, reason=body.reason)
    return services.describe_user(username, session=db.session, by=principal)


@operation(bp, "/sites", summary="List sites", tag="accounts", response=list[SiteRead], errors=(401,))
def list_sites() -> Any:
    require_principal()
    return [SiteRead.model_validate(s, from_attributes=True) for s in services.list_sites(session=db.session)]


@operation(
    bp,
    "/sites",
    method="POST",
    summary="Create a site (admin)",
    tag="accounts",
    body=SiteCreate,
    response=SiteRead,
    status=201,
    errors=(401, 403, 409),
)
def create_site(body: SiteCreate) -> Any:
    site = services.create_site(body, session=db.session, by=require_principal())
    return SiteRead.model_validate(site, from_attributes=True)


@operation(
    bp,
    "/trials",
    summary="Trials visible to the token's user",
    tag="accounts",
    response=list[TrialRead],
    errors=(401,),
)
def list_trials() -> Any:
    trials = services.list_trials(session=db.session, by=require_principal())
    return [TrialRead.model_validate(t, from_attributes=True) for t in trials]
