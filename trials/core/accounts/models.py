"""Account tables. Every table here is audited: user, role and permission changes are on record."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Strict
from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Uuid
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.validation import PLAIN_TEXT


class Role(StrEnum):
    """Roles. `admin` is installation-wide; site roles are granted per trial and site; the
    others per trial."""

    ADMIN = "admin"
    SPONSOR = "sponsor"
    STATISTICIAN_BLINDED = "statistician_blinded"
    STATISTICIAN_UNBLINDED = "statistician_unblinded"
    COORDINATOR = "coordinator"
    CLINICIAN = "clinician"
    MONITOR = "monitor"


INSTALLATION_ROLES = frozenset({Role.ADMIN})
SITE_ROLES = frozenset({Role.COORDINATOR, Role.CLINICIAN})
TRIAL_ROLES = frozenset(Role) - INSTALLATION_ROLES - SITE_ROLES

_ROLE_VALUES = ", ".join(f"'{r.value}'" for r in Role)
_SITE_ROLE_VALUES = ", ".join(f"'{r.value}'" for r in sorted(SITE_ROLES))


def _created_at() -> datetime:
    return utcnow()


_STRICT = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class SiteBase(SQLModel):
    # Codes follow the protocol document's rules (protocols.document.CODE_PATTERN).
    code: str = Field(
        sa_type=String(20),
        unique=True,
        min_length=1,
        max_length=20,
        schema_extra={"pattern": r"^[A-Z][A-Z0-9_-]{0,19}$"},
    )
    name: str = Field(sa_type=String(200), min_length=1, max_length=200, schema_extra={"pattern": PLAIN_TEXT})
    country: str = Field(
        sa_type=String(2), min_length=2, max_length=2, schema_extra={"pattern": r"^[A-Z]{2}$"}
    )


class Site(Audited, SiteBase, table=True):
    """A clinical site; one site may take part in several trials."""

    __tablename__ = "site"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    created_at: datetime = Field(default_factory=_created_at, sa_column=Column(UTCDateTime, nullable=False))


class SiteCreate(SiteBase):
    model_config = _STRICT  # type: ignore[assignment]


class SiteRead(SiteBase):
    id: uuid.UUID


class TrialBase(SQLModel):
    code: str = Field(
        sa_type=String(20),
        unique=True,
        min_length=2,
        max_length=20,
        schema_extra={"pattern": r"^[A-Z][A-Z0-9-]{1,19}$"},
    )
    title: str = Field(
        sa_type=String(400), min_length=1, max_length=400, schema_extra={"pattern": PLAIN_TEXT}
    )


class Trial(Audited, TrialBase, table=True):
    """A trial hosted by this installation, identified by its protocol's trial code."""

    __tablename__ = "trial"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    created_at: datetime = Field(default_factory=_created_at, sa_column=Column(UTCDateTime, nullable=False))


class TrialCreate(TrialBase):
    model_config = _STRICT  # type: ignore[assignment]


class TrialRead(TrialBase):
    id: uuid.UUID


USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{2,63}$"


class UserBase(SQLModel):
    username: str = Field(
        sa_type=String(64),
        unique=True,
        min_length=3,
        max_length=64,
        schema_extra={"pattern": USERNAME_PATTERN},
    )
    # Shown with every signature: no control or format characters (NUL, bidi overrides) that
    # could hide or disguise the name.
    printed_name: str = Field(
        sa_type=String(200), min_length=1, max_length=200, schema_extra={"pattern": PLAIN_TEXT}
    )
    email: str | None = Field(
        default=None,
        sa_type=String(254),
        max_length=254,
        schema_extra={"pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"},
    )


class User(Audited, UserBase, table=True):
    """A person who signs in. Never deleted: disabled, so the audit trail keeps its meaning."""

    __tablename__ = "user_account"
    __audit_exclude__ = frozenset({"failed_sign_ins", "last_sign_in_at"})
    __audit_redact__ = frozenset({"password_hash", "session_version"})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    password_hash: str = Field(sa_type=String(256))
    is_active: bool = Field(default=True)
    failed_sign_ins: int = Field(default=0)
    locked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_sign_in_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    # Rotated on password change, disabling and locking: every existing web session ends.
    session_version: str = Field(sa_type=String(32))
    password_changed_at: datetime = Field(
        default_factory=_created_at, sa_column=Column(UTCDateTime, nullable=False)
    )
    created_at: datetime = Field(default_factory=_created_at, sa_column=Column(UTCDateTime, nullable=False))


class UserCreate(UserBase):
    model_config = _STRICT  # type: ignore[assignment]
    password: str = Field(min_length=12, max_length=256)


class GrantRead(SQLModel):
    id: uuid.UUID
    role: str
    trial_code: str | None
    site_code: str | None


class UserRead(UserBase):
    id: uuid.UUID
    is_active: bool
    locked: bool
    grants: list[GrantRead]


class GrantCreate(SQLModel):
    model_config = _STRICT  # type: ignore[assignment]
    # SQLModel validates JSON bodies in python mode, where strict enums accept only `Role`
    # instances: let the role be given by its value ("coordinator"), still one of the members.
    role: Annotated[Role, Strict(False)]
    trial_code: str | None = None
    site_code: str | None = None


class RoleGrant(Audited, SQLModel, table=True):
    """A role held by a user: installation-wide (admin), in a trial, or in a trial at a site."""

    __tablename__ = "role_grant"
    __table_args__ = (
        CheckConstraint(f"role IN ({_ROLE_VALUES})", name="role_known"),
        CheckConstraint(
            f"(role = 'admin' AND trial_id IS NULL AND site_id IS NULL)"
            f" OR (role IN ({_SITE_ROLE_VALUES}) AND trial_id IS NOT NULL AND site_id IS NOT NULL)"
            f" OR (role NOT IN ('admin', {_SITE_ROLE_VALUES})"
            f" AND trial_id IS NOT NULL AND site_id IS NULL)",
            name="role_scope",
        ),
        Index("ix_role_grant_user_id_role_trial_id_site_id", "user_id", "role", "trial_id", "site_id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("user_account.id"), nullable=False))
    role: str = Field(sa_type=String(32))
    trial_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=True)
    )
    site_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("site.id"), nullable=True)
    )
    granted_at: datetime = Field(default_factory=_created_at, sa_column=Column(UTCDateTime, nullable=False))


class TokenCreate(SQLModel):
    model_config = _STRICT  # type: ignore[assignment]
    name: str = Field(min_length=1, max_length=100)
    scope: str = Field(default="read", schema_extra={"pattern": r"^(read|write)$"})
    expires_in_days: int = Field(default=90, ge=1, le=365)


class TokenRead(SQLModel):
    id: uuid.UUID
    name: str
    prefix: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiToken(Audited, SQLModel, table=True):
    """A personal API token. Only its SHA-256 is stored; it acts with its user's current rights,
    narrowed to read-only when its scope is `read`."""

    __tablename__ = "api_token"
    __audit_exclude__ = frozenset({"last_used_at"})
    __audit_redact__ = frozenset({"token_hash"})
    __table_args__ = (CheckConstraint("scope IN ('read', 'write')", name="scope_known"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user_account.id"), nullable=False, index=True)
    )
    name: str = Field(sa_type=String(100))
    prefix: str = Field(sa_type=String(16))
    token_hash: str = Field(sa_type=String(64), unique=True)
    scope: str = Field(sa_type=String(8))
    created_at: datetime = Field(default_factory=_created_at, sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
