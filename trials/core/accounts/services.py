"""Account services: users, grants, sites, trials, sign-in with lockout, API tokens.

Services flush and never commit; they authorize through `authorize`, which also records the role
under which the audited change was made.
"""

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from trials.core.accounts.models import (
    INSTALLATION_ROLES,
    SITE_ROLES,
    ApiToken,
    GrantCreate,
    GrantRead,
    Role,
    RoleGrant,
    Site,
    SiteCreate,
    TokenCreate,
    Trial,
    TrialCreate,
    User,
    UserCreate,
    UserRead,
)
from trials.core.accounts.permissions import REFUSALS, Grant, Permission, Principal
from trials.core.audit import services as audit
from trials.core.db import utcnow
from trials.core.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound, Unauthorized

# The nil UUID stands for the installation itself (demo set-up, bootstrap of the first admin).
SYSTEM = Principal(uuid.UUID(int=0), "system", "System", (Grant(Role.ADMIN),))
TOKEN_PREFIX = "trl_"
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()


def configure_password_hashing(*, time_cost: int, memory_cost_kib: int, parallelism: int) -> None:
    """Set the argon2id parameters; hashes made with others are upgraded at the next sign-in."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism)


class AccountLocked(Forbidden):
    title = "Account locked"


# -- principals and authorization ---------------------------------------------------------


def load_principal(user: User, *, session: Session, token_scope: str | None = None) -> Principal:
    grants = session.exec(select(RoleGrant).where(RoleGrant.user_id == user.id)).all()
    return Principal(
        user_id=user.id,
        username=user.username,
        printed_name=user.printed_name,
        grants=tuple(Grant(Role(g.role), g.trial_id, g.site_id) for g in grants),
        session_version=user.session_version,
        token_scope=token_scope,
    )


def actor_for(principal: Principal, channel: str) -> audit.Actor:
    if principal is SYSTEM:
        return audit.Actor.system(channel)
    # The role under which an act is allowed is set by `authorize`; until then, a user holding
    # exactly one role acts in it.
    roles = principal.roles
    return audit.Actor(
        principal.user_id,
        principal.username,
        principal.printed_name,
        next(iter(roles)).value if len(roles) == 1 else None,
        channel,
    )


def authorize(
    principal: Principal,
    permission: Permission,
    *,
    session: Session,
    trial_id: uuid.UUID | None = None,
    site_id: uuid.UUID | None = None,
) -> Grant:
    """The grant allowing `permission`, or Forbidden; the grant's role goes on the audit entries."""
    grant = principal.grant_for(permission, trial_id=trial_id, site_id=site_id)
    if grant is None:
        raise Forbidden(
            REFUSALS.get(permission, f"your account is not allowed to {permission.value.replace('_', ' ')}")
        )
    audit.act_as_role(session, grant.role.value)
    return grant


def principal_from_session_id(value: str, *, session: Session) -> Principal | None:
    """Flask-Login's user loader: `<user id>.<session version>` of an active, unlocked user."""
    user_id, _, version = value.partition(".")
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        return None
    user = session.get(User, uid)
    if user is None or not user.is_active or user.locked_at is not None:
        return None
    if not secrets.compare_digest(user.session_version, version):
        return None
    return load_principal(user, session=session)


# -- users ----------------------------------------------------------------------------------


def _check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput.field(
            "password", "min_length", f"password: must be at least {MIN_PASSWORD_LENGTH} characters"
        )
    if username.lower() in password.lower():
        raise InvalidInput.field("password", "contains_username", "password: must not contain the username")


def get_user(username: str, *, session: Session) -> User:
    user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def create_user(data: UserCreate, *, session: Session, by: Principal) -> User:
    authorize(by, Permission.MANAGE_ACCOUNTS, session=session)
    username = data.username.lower()
    _check_password(data.password, username)
    if session.exec(select(User.id).where(User.username == username)).first() is not None:
        raise Conflict(
            f"username {username!r} is taken",
            errors=[FieldError("username", "unique", f"username: {username!r} is already taken")],
        )
    user = User(
        username=username,
        printed_name=data.printed_name,
        email=data.email,
        password_hash=_hasher.hash(data.password),
        session_version=secrets.token_hex(16),
    )
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str, *, session: Session, reason: str) -> None:
    _check_password(password, user.username)
    with audit.reason(session, reason):
        user.password_hash = _hasher.hash(password)
        user.password_changed_at = utcnow()
        user.session_version = secrets.token_hex(16)
        session.add(user)


def set_active(username: str, active: bool, *, session: Session, by: Principal, reason: str) -> User:
    authorize(by, Permission.MANAGE_ACCOUNTS, session=session)
    user = get_user(username, session=session)
    if user.id == by.user_id and not active:
        raise Conflict("you cannot disable your own account")
    with audit.reason(session, reason):
        user.is_active = active
        user.session_version = secrets.token_hex(16)
        session.add(user)
    return user


def unlock(username: str, *, session: Session, by: Principal, reason: str) -> User:
    authorize(by, Permission.MANAGE_ACCOUNTS, session=session)
    user = get_user(username, session=session)
    if user.locked_at is None:
        raise Conflict(f"the account {user.username!r} is not locked")
    with audit.reason(session, reason):
        user.locked_at = None
        user.failed_sign_ins = 0
        session.add(user)
    return user


def grant_reads(user_ids: Sequence[uuid.UUID], *, session: Session) -> dict[uuid.UUID, list[GrantRead]]:
    rows = session.exec(
        select(RoleGrant, Trial.code, Site.code)
        .join(Trial, col(RoleGrant.trial_id) == Trial.id, isouter=True)
        .join(Site, col(RoleGrant.site_id) == Site.id, isouter=True)
        .where(col(RoleGrant.user_id).in_(user_ids))
        .order_by(col(RoleGrant.granted_at))
    ).all()
    out: dict[uuid.UUID, list[GrantRead]] = {uid: [] for uid in user_ids}
    for grant, trial_code, site_code in rows:
        out[grant.user_id].append(
            GrantRead(id=grant.id, role=grant.role, trial_code=trial_code, site_code=site_code)
        )
    return out


def user_read(user: User, grants: list[GrantRead]) -> UserRead:
    return UserRead(
        id=user.id,
        username=user.username,
        printed_name=user.printed_name,
        email=user.email,
        is_active=user.is_active,
        locked=user.locked_at is not None,
        grants=grants,
    )


def list_users(*, session: Session, by: Principal) -> list[UserRead]:
    authorize(by, Permission.VIEW_ACCOUNTS, session=session)
    users = session.exec(select(User).order_by(col(User.username))).all()
    grants = grant_reads([u.id for u in users], session=session)
    return [user_read(u, grants[u.id]) for u in users]


def describe_user(username: str, *, session: Session, by: Principal) -> UserRead:
    authorize(by, Permission.VIEW_ACCOUNTS, session=session)
    user = get_user(username, session=session)
    return user_read(user, grant_reads([user.id], session=session)[user.id])


# -- grants, sites, trials ------------------------------------------------------------------


def get_site(code: str, *, session: Session, field: str = "site_code") -> Site:
    site = session.exec(select(Site).where(Site.code == code)).first()
    if site is None:
        raise InvalidInput.field(field, "exists", f"{field}: no site with code {code!r}")
    return site


def get_trial(code: str, *, session: Session, field: str = "trial_code") -> Trial:
    trial = session.exec(select(Trial).where(Trial.code == code)).first()
    if trial is None:
        raise InvalidInput.field(field, "exists", f"{field}: no trial with code {code!r}")
    return trial


def grant_role(username: str, data: GrantCreate, *, session: Session, by: Principal) -> RoleGrant:
    authorize(by, Permission.MANAGE_ACCOUNTS, session=session)
    user = get_user(username, session=session)
    role = Role(data.role)
    errors = []
    if role in INSTALLATION_ROLES and (data.trial_code or data.site_code):
        errors.append(
            FieldError("trial_code", "forbidden", f"{role}: is installation-wide, name no trial or site")
        )
    if role not in INSTALLATION_ROLES and not data.trial_code:
        errors.append(
            FieldError("trial_code", "required", f"trial_code: the {role} role is granted per trial")
        )
    if role in SITE_ROLES and not data.site_code:
        errors.append(FieldError("site_code", "required", f"site_code: the {role} role is granted per site"))
    if role not in SITE_ROLES and data.site_code:
        errors.append(
            FieldError("site_code", "forbidden", f"site_code: the {role} role is not bound to a site")
        )
    if errors:
        raise InvalidInput("the role grant is not valid", errors=errors)
    trial = get_trial(data.trial_code, session=session) if data.trial_code else None
    site = get_site(data.site_code, session=session) if data.site_code else None
    existing = session.exec(
        select(RoleGrant.id).where(
            RoleGrant.user_id == user.id,
            RoleGrant.role == role.value,
            RoleGrant.trial_id == (trial.id if trial else None),
            RoleGrant.site_id == (site.id if site else None),
        )
    ).first()
    if existing is not None:
        raise Conflict(f"{user.username} already holds this grant")
    grant = RoleGrant(
        user_id=user.id,
        role=role.value,
        trial_id=trial.id if trial else None,
        site_id=site.id if site else None,
    )
    session.add(grant)
    session.flush()
    return grant


def revoke_role(grant_id: uuid.UUID, *, session: Session, by: Principal, reason: str) -> None:
    authorize(by, Permission.MANAGE_ACCOUNTS, session=session)
    grant = session.get(RoleGrant, grant_id)
    if grant is None:
        raise NotFound("no such role grant")
    if grant.user_id == by.user_id and grant.role == Role.ADMIN.value:
        raise Conflict("you cannot revoke your own admin role")
    with audit.reason(session, reason):
        session.delete(grant)


_CodedModel = TypeVar("_CodedModel", Site, Trial)


def _insert_by_code(
    model: type[_CodedModel], data: SiteCreate | TrialCreate, *, session: Session
) -> _CodedModel:
    """Insert a site or trial, refusing a code that is taken."""
    what = model.__name__.lower()
    if session.exec(select(model).where(model.code == data.code)).first() is not None:
        message = f"code: a {what} with code {data.code!r} exists"
        raise Conflict(message, errors=[FieldError("code", "unique", message)])
    row = model.model_validate(data)
    session.add(row)
    session.flush()
    return row


def create_site(data: SiteCreate, *, session: Session, by: Principal) -> Site:
    authorize(by, Permission.MANAGE_ACCOUNTS, session=session)
    return _insert_by_code(Site, data, session=session)


def list_sites(*, session: Session) -> list[Site]:
    return list(session.exec(select(Site).order_by(col(Site.code))).all())


def create_trial(data: TrialCreate, *, session: Session, by: Principal) -> Trial:
    authorize(by, Permission.MANAGE_ACCOUNTS, session=session)
    return _insert_by_code(Trial, data, session=session)


def list_trials(*, session: Session, by: Principal) -> list[Trial]:
    query = select(Trial).order_by(col(Trial.code))
    visible = by.trial_ids_with(Permission.VIEW_TRIAL)
    if by.grant_for(Permission.VIEW_ACCOUNTS) is None:
        query = query.where(col(Trial.id).in_(visible or ()))
    return list(session.exec(query).all())


# -- sign-in ----------------------------------------------------------------------------------


def _password_attempt(
    user: User, password: str, *, session: Session, lockout_threshold: int, failed_action: str
) -> bool:
    """Check `user`'s password. A failure is audited and counted; the Nth in a row locks.

    Raises AccountLocked when this failure locks the account.
    """
    try:
        _hasher.verify(user.password_hash, password)
        return True
    except (VerificationError, InvalidHashError):
        pass
    user.failed_sign_ins += 1
    audit.record_event(
        session,
        failed_action,
        table_name="user_account",
        record_id=str(user.id),
        detail=f"wrong password ({user.failed_sign_ins} in a row)",
    )
    if user.failed_sign_ins >= lockout_threshold:
        with audit.reason(session, f"{user.failed_sign_ins} consecutive failed sign-ins"):
            user.locked_at = utcnow()
            user.session_version = secrets.token_hex(16)
            session.add(user)
        audit.record_event(
            session,
            "account_locked",
            table_name="user_account",
            record_id=str(user.id),
            detail=f"locked after {user.failed_sign_ins} consecutive failed sign-ins",
        )
        raise AccountLocked(
            "this account is now locked after repeated failed sign-ins: ask an administrator to unlock it",
            keep_changes=True,
        )
    session.add(user)
    session.flush()
    return False


def sign_out(principal: Principal, *, session: Session, detail: str | None = None) -> None:
    """End every web session of the user: the session cookie is signed, so the server-side
    session version is rotated, and a copied cookie stops working too."""
    user = session.get(User, principal.user_id)
    if user is None:
        return
    audit.record_event(session, "sign_out", table_name="user_account", record_id=str(user.id), detail=detail)
    with audit.reason(session, detail or "signed out"):
        user.session_version = secrets.token_hex(16)
        session.add(user)


def reauthenticate(principal: Principal, password: str, *, session: Session, lockout_threshold: int) -> User:
    """Check the password of a signed-in user again, as an electronic signature requires.

    A wrong password counts towards the lockout like a failed sign-in.
    """
    user = session.get(User, principal.user_id, with_for_update=True, populate_existing=True)
    if user is None or not user.is_active or user.locked_at is not None:
        raise Forbidden("this account cannot sign")
    if not _password_attempt(
        user, password, session=session, lockout_threshold=lockout_threshold, failed_action="signature_failed"
    ):
        raise InvalidInput(
            "password: the password is not correct",
            errors=[FieldError("password", "reauthentication", "password: the password is not correct")],
            keep_changes=True,
        )
    if user.failed_sign_ins:
        user.failed_sign_ins = 0
        session.add(user)
    return user


def sign_in(
    username: str, password: str, *, session: Session, lockout_threshold: int, channel: str = "web"
) -> Principal:
    """Check a password. Every attempt is audited; the Nth consecutive failure locks the account.

    Failures raise `Unauthorized` (or `AccountLocked`) after recording the attempt: the caller
    must keep the changes even though it answers with an error.
    """
    name = username.strip().lower()[:64]
    # The row lock makes concurrent attempts count one after another (PostgreSQL; SQLite's
    # immediate transactions already do): no failure is lost to a race, so the lockout holds.
    user = session.exec(select(User).where(User.username == name).with_for_update()).first()
    if user is None:
        actor = audit.Actor(None, name or "(blank)", "", None, channel)
        audit.record_event(session, "sign_in_failed", detail="unknown username", actor=actor)
        raise Unauthorized("wrong username or password", keep_changes=True)
    actor = audit.Actor(user.id, user.username, user.printed_name, None, channel)
    audit.set_actor(session, actor)
    if user.locked_at is not None:
        audit.record_event(
            session,
            "sign_in_failed",
            table_name="user_account",
            record_id=str(user.id),
            detail="account locked",
        )
        raise AccountLocked(
            "this account is locked after repeated failed sign-ins: ask an administrator to unlock it",
            keep_changes=True,
        )
    if not user.is_active:
        audit.record_event(
            session,
            "sign_in_failed",
            table_name="user_account",
            record_id=str(user.id),
            detail="account disabled",
        )
        raise Unauthorized("wrong username or password", keep_changes=True)
    if not _password_attempt(
        user, password, session=session, lockout_threshold=lockout_threshold, failed_action="sign_in_failed"
    ):
        raise Unauthorized("wrong username or password", keep_changes=True)
    user.failed_sign_ins = 0
    user.last_sign_in_at = utcnow()
    if _hasher.check_needs_rehash(user.password_hash):
        with audit.reason(session, "password hash upgraded to current parameters"):
            user.password_hash = _hasher.hash(password)
    session.add(user)
    audit.record_event(session, "sign_in", table_name="user_account", record_id=str(user.id))
    session.flush()
    return load_principal(user, session=session)


# -- API tokens -------------------------------------------------------------------------------


def _token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(data: TokenCreate, *, session: Session, by: Principal) -> tuple[ApiToken, str]:
    """A new token for `by` itself. The secret is returned once and only its hash is stored."""
    if by.token_scope is not None:
        raise Forbidden("an API token cannot create API tokens: sign in to the web to make one")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=by.user_id,
        name=data.name,
        prefix=secret[:12],
        token_hash=_token_digest(secret),
        scope=data.scope,
        expires_at=utcnow() + timedelta(days=data.expires_in_days),
    )
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(*, session: Session, by: Principal) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == by.user_id).order_by(col(ApiToken.created_at).desc())
    return list(session.exec(query).all())


def revoke_token(token_id: uuid.UUID, *, session: Session, by: Principal) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != by.user_id:
        raise NotFound("no such token")
    if token.revoked_at is not None:
        raise Conflict("the token is already revoked")
    with audit.reason(session, "revoked by its owner"):
        token.revoked_at = utcnow()
        session.add(token)
    return token


def authenticate_token(raw: str, *, session: Session) -> Principal | None:
    """The principal of a valid token: not revoked, not expired, its user active and unlocked."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == _token_digest(raw))).first()
    now = utcnow()
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.is_active or user.locked_at is not None:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
        token.last_used_at = now  # bookkeeping, excluded from the audit trail
        session.add(token)
    return load_principal(user, session=session, token_scope=token.scope)
