"""Web sign-in (sessions, CSRF, lockout, idle timeout) and API token authentication."""

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from tests.conftest import PASSWORD, csrf_token, sign_in
from trials.core.accounts import services
from trials.core.accounts.models import ApiToken, TokenCreate, User
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry

WRONG = "not the right password at all"


def token_for(session: Session, principal: Principal, scope: str = "write") -> dict[str, str]:
    """An Authorization header with a new API token of `principal`."""
    _token, secret = services.create_token(
        TokenCreate(name=f"{scope} token", scope=scope), session=session, by=principal
    )
    return {"Authorization": f"Bearer {secret}"}


def entries(session: Session, *, record_id: Any = None, action: str | None = None) -> list[AuditEntry]:
    session.expire_all()
    query = select(AuditEntry).order_by(AuditEntry.seq)
    if record_id is not None:
        query = query.where(AuditEntry.record_id == str(record_id))
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(session.scalars(query).all())


def reload(session: Session, user: User) -> User:
    session.expire_all()
    fresh = session.get(User, user.id)
    assert fresh is not None
    return fresh


def assert_sent_to_sign_in(response: Any, next_path: str | None = None) -> None:
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/sign-in"
    if next_path is not None:
        assert parse_qs(location.query)["next"][0].rstrip("?") == next_path


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    return body


@pytest.fixture
def world(make_site: Any, make_trial: Any, make_user: Any) -> dict[str, Any]:
    """A site, a trial, an admin and a coordinator."""
    make_site()
    make_trial()
    return {
        "admin": make_user("adam", "admin"),
        "coordinator": make_user("ann", "coordinator:MOOD-CBT:LON"),
    }


# -- anonymous requests -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/account", "/admin/users", "/admin/sites", "/audit"])
def test_anonymous_web_request_is_sent_to_sign_in(client: Any, path: str) -> None:
    assert_sent_to_sign_in(client.get(path), next_path=path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/sites"),
        ("GET", "/api/v1/audit"),
    ],
)
def test_anonymous_api_request_gets_401(client: Any, method: str, path: str) -> None:
    response = client.open(path, method=method, json={"code": "PAR", "name": "Paris", "country": "FR"})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_api_ignores_the_web_session(client: Any, world: dict[str, Any]) -> None:
    """The API takes bearer tokens only: a signed-in admin's cookie is not enough."""
    assert sign_in(client, "adam").status_code == 302
    assert client.get("/admin/users").status_code == 200
    assert_problem(client.get("/api/v1/users"), 401)


# -- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/users", "/admin/sites"])
def test_coordinator_gets_403_on_admin_pages(client: Any, world: dict[str, Any], path: str) -> None:
    assert sign_in(client, "ann").status_code == 302
    response = client.get(path)
    assert response.status_code == 403
    assert response.mimetype == "text/html"


ADMIN_ROUTES = [
    ("GET", "/api/v1/users", None, 200),
    (
        "POST",
        "/api/v1/users",
        {"username": "bob", "printed_name": "Bob", "password": "a long passphrase"},
        201,
    ),
    ("POST", "/api/v1/sites", {"code": "PAR", "name": "Paris Clinic", "country": "FR"}, 201),
    ("GET", "/api/v1/audit/verify", None, 200),
]


@pytest.mark.parametrize(("method", "path", "body", "_ok"), ADMIN_ROUTES)
def test_coordinator_write_token_gets_403_on_admin_api(
    client: Any,
    session: Session,
    world: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    _ok: int,
) -> None:
    """A write-scope token never exceeds its user's rights."""
    _user, coordinator = world["coordinator"]
    headers = token_for(session, coordinator, "write")
    users_before = session.scalar(select(func.count()).select_from(User))
    assert_problem(client.open(path, method=method, json=body, headers=headers), 403)
    assert session.scalar(select(func.count()).select_from(User)) == users_before


@pytest.mark.parametrize("path", ["/admin/users", "/admin/sites", "/audit"])
def test_admin_may_open_admin_pages(client: Any, world: dict[str, Any], path: str) -> None:
    assert sign_in(client, "adam").status_code == 302
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"


@pytest.mark.parametrize(("method", "path", "body", "ok"), ADMIN_ROUTES)
def test_admin_token_may_use_admin_api(
    client: Any, session: Session, world: dict[str, Any], method: str, path: str, body: Any, ok: int
) -> None:
    _user, admin = world["admin"]
    response = client.open(path, method=method, json=body, headers=token_for(session, admin, "write"))
    assert response.status_code == ok, response.get_json()
    assert response.mimetype == "application/json"
    if path == "/api/v1/audit/verify":
        assert response.get_json()["ok"] is True


def test_read_token_of_admin_reads_but_does_not_write(
    client: Any, session: Session, world: dict[str, Any]
) -> None:
    _user, admin = world["admin"]
    headers = token_for(session, admin, "read")
    response = client.get("/api/v1/users", headers=headers)
    assert response.status_code == 200
    assert {u["username"] for u in response.get_json()} >= {"adam", "ann"}
    assert client.get("/api/v1/users/ann", headers=headers).get_json()["grants"][0]["site_code"] == "LON"
    assert [t["code"] for t in client.get("/api/v1/trials", headers=headers).get_json()] == ["MOOD-CBT"]
    body = {"username": "bob", "printed_name": "Bob", "password": "a long passphrase"}
    assert_problem(client.post("/api/v1/users", json=body, headers=headers), 403)
    assert_problem(
        client.post("/api/v1/sites", json={"code": "PAR", "name": "P", "country": "FR"}, headers=headers), 403
    )
    assert session.scalar(select(User.id).where(User.username == "bob")) is None


# -- API tokens ---------------------------------------------------------------------------------


def create_token_on_account_page(client: Any, scope: str = "read") -> str:
    page = client.get("/account")
    assert page.status_code == 200
    response = client.post(
        "/account",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "name": "laptop",
            "scope": scope,
            "expires_in_days": "30",
        },
    )
    assert response.status_code == 200
    match = re.search(r'id="new-token">([^<]+)<', response.get_data(as_text=True))
    assert match, "the new token is not shown"
    return match.group(1).strip()


def test_token_from_account_page_works_until_revoked(
    client: Any, session: Session, world: dict[str, Any]
) -> None:
    user, _ = world["coordinator"]
    assert sign_in(client, "ann").status_code == 302
    secret = create_token_on_account_page(client, scope="write")
    assert secret.startswith(services.TOKEN_PREFIX)

    # Shown once only: the account page no longer shows it.
    assert secret not in client.get("/account").get_data(as_text=True)

    api = client.application.test_client()  # no web session: the token alone
    bearer = {"Authorization": f"Bearer {secret}"}
    me = api.get("/api/v1/me", headers=bearer)
    assert me.status_code == 200
    assert me.get_json()["username"] == "ann"
    assert me.get_json()["token_scope"] == "write"
    assert [g["role"] for g in me.get_json()["grants"]] == ["coordinator"]

    session.expire_all()
    token = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).one()
    assert token.name == "laptop"
    assert token.scope == "write"
    assert token.expires_at is not None
    assert timedelta(days=29) < token.expires_at - datetime.now(UTC) <= timedelta(days=30)
    assert token.last_used_at is not None

    page = client.get("/account")
    revoked = client.post(
        f"/account/tokens/{token.id}/revoke", data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert revoked.status_code == 302
    session.expire_all()
    assert session.get(ApiToken, token.id).revoked_at is not None  # type: ignore[union-attr]
    change = entries(session, record_id=token.id, action="update")
    assert [(e.field, e.reason, e.username) for e in change] == [
        ("revoked_at", "revoked by its owner", "ann")
    ]

    assert_problem(api.get("/api/v1/me", headers=bearer), 401)


def test_token_cannot_be_revoked_without_csrf(client: Any, session: Session, world: dict[str, Any]) -> None:
    _user, coordinator = world["coordinator"]
    token, _secret = services.create_token(TokenCreate(name="t"), session=session, by=coordinator)
    assert sign_in(client, "ann").status_code == 302
    assert client.post(f"/account/tokens/{token.id}/revoke").status_code == 400
    session.expire_all()
    assert session.get(ApiToken, token.id).revoked_at is None  # type: ignore[union-attr]


def test_token_of_another_user_cannot_be_revoked(
    client: Any, session: Session, world: dict[str, Any]
) -> None:
    _user, admin = world["admin"]
    token, _secret = services.create_token(TokenCreate(name="t"), session=session, by=admin)
    assert sign_in(client, "ann").status_code == 302
    page = client.get("/account")
    response = client.post(
        f"/account/tokens/{token.id}/revoke", data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert response.status_code == 404
    session.expire_all()
    assert session.get(ApiToken, token.id).revoked_at is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer trl_" + "x" * 43,  # well-formed, unknown
        "Bearer 8a3bcfb649ec46d7b1edf6f57c9f816d",  # no prefix
        "Bearer",
        "Bearer ",
        "Basic YWRhbTpwYXNzd29yZA==",
        "trl_" + "x" * 43,  # no scheme
        "Bearer trl_a trl_b",
    ],
)
def test_unknown_or_malformed_token_gets_401(client: Any, world: dict[str, Any], authorization: str) -> None:
    response = client.get("/api/v1/me", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_gets_401(client: Any, session: Session, world: dict[str, Any]) -> None:
    _user, admin = world["admin"]
    token, secret = services.create_token(TokenCreate(name="t"), session=session, by=admin)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    session.expire_all()
    token = session.get(ApiToken, token.id)  # type: ignore[assignment]
    with audit.reason(session, "test: let the token expire"):
        token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.add(token)
    assert_problem(client.get("/api/v1/me", headers=bearer), 401)


@pytest.mark.parametrize("state", ["disabled", "locked"])
def test_token_of_disabled_or_locked_user_gets_401(
    client: Any, session: Session, world: dict[str, Any], state: str
) -> None:
    user, coordinator = world["coordinator"]
    bearer = token_for(session, coordinator, "write")
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    user = reload(session, user)
    with audit.reason(session, f"test: {state}"):
        if state == "disabled":
            user.is_active = False
        else:
            user.locked_at = datetime.now(UTC)
        session.add(user)
    assert_problem(client.get("/api/v1/me", headers=bearer), 401)


def test_token_cannot_create_tokens(session: Session, world: dict[str, Any]) -> None:
    user, _ = world["admin"]
    by_token = services.load_principal(user, session=session, token_scope="write")
    with pytest.raises(services.Forbidden):
        services.create_token(TokenCreate(name="t"), session=session, by=by_token)


def test_only_the_sha256_of_a_token_is_stored(client: Any, session: Session, world: dict[str, Any]) -> None:
    user, _ = world["coordinator"]
    assert sign_in(client, "ann").status_code == 302
    secret = create_token_on_account_page(client)
    api = client.application.test_client()
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    session.expire_all()
    token = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).one()
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(token.prefix)
    assert len(token.prefix) < len(secret) // 2

    connection = session.connection()
    token_rows = connection.execute(select(ApiToken.__table__)).all()  # type: ignore[attr-defined]
    audit_rows = connection.execute(select(AuditEntry.__table__)).all()  # type: ignore[attr-defined]
    assert token_rows
    assert audit_rows
    for row in [*token_rows, *audit_rows]:
        assert all(secret not in str(value) for value in row)
    hash_entries = [e for e in audit_rows if e.field == "token_hash"]
    assert hash_entries
    assert all(e.new_value == '"[redacted]"' for e in hash_entries)


# -- CSRF -----------------------------------------------------------------------------------------


def test_sign_in_without_csrf_is_refused(client: Any, session: Session, world: dict[str, Any]) -> None:
    client.get("/sign-in")
    response = client.post("/sign-in", data={"username": "ann", "password": PASSWORD})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert_sent_to_sign_in(client.get("/"))
    assert entries(session, action="sign_in") == []


def test_sign_in_with_a_wrong_csrf_token_is_refused(client: Any, world: dict[str, Any]) -> None:
    client.get("/sign-in")
    data = {"username": "ann", "password": PASSWORD, "csrf_token": "forged"}
    assert client.post("/sign-in", data=data).status_code == 400
    assert_sent_to_sign_in(client.get("/"))


def test_sign_out_without_csrf_is_refused(client: Any, session: Session, world: dict[str, Any]) -> None:
    assert sign_in(client, "ann").status_code == 302
    assert client.post("/sign-out").status_code == 400
    assert client.get("/").status_code == 200
    assert entries(session, action="sign_out") == []


def test_token_form_without_csrf_creates_nothing(
    client: Any, session: Session, world: dict[str, Any]
) -> None:
    assert sign_in(client, "ann").status_code == 302
    response = client.post("/account", data={"name": "laptop", "scope": "write", "expires_in_days": "30"})
    assert response.status_code == 400
    assert 'id="new-token"' not in response.get_data(as_text=True)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(ApiToken)) == 0


# -- sign-in, sign-out, lockout ---------------------------------------------------------------


def test_sign_in_and_out_are_audited(client: Any, session: Session, world: dict[str, Any]) -> None:
    user, _ = world["coordinator"]
    assert_sent_to_sign_in(client.get("/"))
    response = sign_in(client, "ann")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/"
    assert client.get("/").status_code == 200
    signed_in = entries(session, action="sign_in")
    assert [(e.record_id, e.username, e.channel) for e in signed_in] == [(str(user.id), "ann", "web")]
    assert reload(session, user).last_sign_in_at is not None

    home = client.get("/").get_data(as_text=True)
    response = client.post("/sign-out", data={"csrf_token": csrf_token(home)})
    assert_sent_to_sign_in(response)
    signed_out = entries(session, action="sign_out")
    assert [(e.record_id, e.username, e.channel) for e in signed_out] == [(str(user.id), "ann", "web")]
    assert_sent_to_sign_in(client.get("/"), next_path="/")


def test_sign_in_goes_to_next_but_never_off_site(client: Any, world: dict[str, Any]) -> None:
    page = client.get("/sign-in")
    data = {
        "username": "ann",
        "password": PASSWORD,
        "csrf_token": csrf_token(page.get_data(as_text=True)),
    }
    response = client.post("/sign-in?next=/account", data=data)
    assert response.headers["Location"].endswith("/account")
    client.post("/sign-out", data={"csrf_token": csrf_token(client.get("/").get_data(as_text=True))})
    page = client.get("/sign-in")
    data["csrf_token"] = csrf_token(page.get_data(as_text=True))
    response = client.post("/sign-in?next=//evil.example/x", data=data)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).netloc in ("", "localhost")
    assert urlsplit(response.headers["Location"]).path == "/"


def test_unknown_user_is_refused_and_audited(client: Any, session: Session, world: dict[str, Any]) -> None:
    response = sign_in(client, "nobody")
    assert response.status_code == 401
    assert_sent_to_sign_in(client.get("/"))
    failed = entries(session, action="sign_in_failed")
    assert [(e.username, e.new_value) for e in failed] == [("nobody", "unknown username")]


def test_disabled_user_cannot_sign_in(client: Any, session: Session, world: dict[str, Any]) -> None:
    _user, admin = world["admin"]
    services.set_active("ann", False, session=session, by=admin, reason="left the study team")
    assert sign_in(client, "ann").status_code == 401
    assert_sent_to_sign_in(client.get("/"))


def test_five_failures_do_not_lock_and_the_sixth_does(
    client: Any, session: Session, world: dict[str, Any]
) -> None:
    user, _ = world["coordinator"]
    for attempt in range(1, 6):
        assert sign_in(client, "ann", WRONG).status_code == 401
        fresh = reload(session, user)
        assert fresh.failed_sign_ins == attempt  # kept although the answer was an error
        assert fresh.locked_at is None
    assert entries(session, action="account_locked") == []

    response = sign_in(client, "ann", WRONG)
    assert response.status_code == 403
    assert "locked" in response.get_data(as_text=True)
    fresh = reload(session, user)
    assert fresh.locked_at is not None

    failed = entries(session, record_id=user.id, action="sign_in_failed")
    assert len(failed) == 6
    assert {(e.username, e.channel) for e in failed} == {("ann", "web")}
    assert failed[-1].new_value == "wrong password (6 in a row)"
    locked = entries(session, record_id=user.id, action="account_locked")
    assert len(locked) == 1
    lock_change = [e for e in entries(session, record_id=user.id, action="update") if e.field == "locked_at"]
    assert len(lock_change) == 1
    assert lock_change[0].old_value is None
    assert lock_change[0].new_value is not None
    assert lock_change[0].reason == "6 consecutive failed sign-ins"
    assert failed[-1].seq < lock_change[0].seq < locked[0].seq

    # Locked: even the right password is refused, and the attempt is on record.
    assert sign_in(client, "ann").status_code == 403
    assert_sent_to_sign_in(client.get("/"))
    assert entries(session, record_id=user.id, action="sign_in_failed")[-1].new_value == "account locked"
    assert entries(session, record_id=user.id, action="sign_in") == []


def test_admin_unlock_lets_the_user_in_again(client: Any, session: Session, world: dict[str, Any]) -> None:
    user, _ = world["coordinator"]
    _admin_user, admin = world["admin"]
    for _ in range(6):
        sign_in(client, "ann", WRONG)
    assert reload(session, user).locked_at is not None

    api = client.application.test_client()
    headers = token_for(session, admin, "write")
    assert_problem(api.post("/api/v1/users/ann/unlock", json={}, headers=headers), 422)
    response = api.post(
        "/api/v1/users/ann/unlock", json={"reason": "identity confirmed by phone"}, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["locked"] is False
    fresh = reload(session, user)
    assert fresh.locked_at is None
    assert fresh.failed_sign_ins == 0
    unlock = [e for e in entries(session, record_id=user.id, action="update") if e.field == "locked_at"][-1]
    assert unlock.new_value is None
    assert (unlock.reason, unlock.username, unlock.channel, unlock.role) == (
        "identity confirmed by phone",
        "adam",
        "api",
        "admin",
    )

    assert_problem(api.post("/api/v1/users/ann/unlock", json={"reason": "again"}, headers=headers), 409)
    assert sign_in(client, "ann").status_code == 302
    assert client.get("/").status_code == 200


def test_a_correct_password_resets_the_failure_count(
    client: Any, session: Session, world: dict[str, Any]
) -> None:
    user, _ = world["coordinator"]
    for _ in range(5):
        assert sign_in(client, "ann", WRONG).status_code == 401
    assert sign_in(client, "ann").status_code == 302
    assert reload(session, user).failed_sign_ins == 0
    client.post("/sign-out", data={"csrf_token": csrf_token(client.get("/").get_data(as_text=True))})
    for _ in range(5):
        assert sign_in(client, "ann", WRONG).status_code == 401
    fresh = reload(session, user)
    assert fresh.failed_sign_ins == 5
    assert fresh.locked_at is None


def test_lockout_threshold_is_configurable(
    app: Any, client: Any, session: Session, world: dict[str, Any]
) -> None:
    user, _ = world["coordinator"]
    app.config["LOCKOUT_THRESHOLD"] = 2
    assert sign_in(client, "ann", WRONG).status_code == 401
    assert sign_in(client, "ann", WRONG).status_code == 403
    assert reload(session, user).locked_at is not None


# -- session lifetime -----------------------------------------------------------------------------


def test_idle_session_is_ended_by_config(
    app: Any, client: Any, session: Session, world: dict[str, Any]
) -> None:
    assert sign_in(client, "ann").status_code == 302
    assert client.get("/account").status_code == 200
    app.config["SESSION_IDLE_MINUTES"] = 0
    assert_sent_to_sign_in(client.get("/account"), next_path="/account")
    app.config["SESSION_IDLE_MINUTES"] = 30
    assert_sent_to_sign_in(client.get("/"))  # the session is gone, not just paused
    assert [e.new_value for e in entries(session, action="sign_out")] == ["idle for more than 0 minutes"]


def test_idle_session_is_ended_after_the_idle_time(app: Any, client: Any, world: dict[str, Any]) -> None:
    assert sign_in(client, "ann").status_code == 302
    idle = app.config["SESSION_IDLE_MINUTES"]
    with client.session_transaction() as web_session:
        web_session["last_seen"] = datetime.now(UTC).timestamp() - (idle - 1) * 60
    assert client.get("/").status_code == 200  # still inside the idle time, and it is renewed
    with client.session_transaction() as web_session:
        web_session["last_seen"] = datetime.now(UTC).timestamp() - (idle + 1) * 60
    assert_sent_to_sign_in(client.get("/"), next_path="/")
    assert_sent_to_sign_in(client.get("/"))


@pytest.mark.parametrize("via", ["disable", "lock"])
def test_disabling_or_locking_a_user_ends_their_web_session(
    client: Any, session: Session, world: dict[str, Any], via: str
) -> None:
    user, _ = world["coordinator"]
    _admin_user, admin = world["admin"]
    assert sign_in(client, "ann").status_code == 302
    assert client.get("/").status_code == 200
    if via == "disable":
        api = client.application.test_client()
        response = api.post(
            "/api/v1/users/ann/disable",
            json={"reason": "left the study team"},
            headers=token_for(session, admin, "write"),
        )
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["is_active"] is False
        assert reload(session, user).is_active is False
    else:
        other = client.application.test_client()
        for _ in range(6):
            sign_in(other, "ann", WRONG)
        assert reload(session, user).locked_at is not None
    assert_sent_to_sign_in(client.get("/"))


def test_concurrent_wrong_passwords_all_count_and_lock(fresh_database_url: str) -> None:
    """Failed sign-ins racing each other are each counted and audited; the threshold still locks."""
    import threading

    from sqlmodel import Session, func, select

    from trials.core.accounts import services as accounts
    from trials.core.accounts.models import User, UserCreate
    from trials.core.audit import services as audit_services
    from trials.core.audit.models import AuditEntry
    from trials.core.db import make_engine
    from trials.core.errors import DomainError

    engine = make_engine(fresh_database_url)
    with Session(engine) as s:
        audit_services.set_actor(s, audit_services.Actor.system())
        accounts.create_user(
            UserCreate(username="racer", printed_name="Racer", password=PASSWORD),
            session=s,
            by=accounts.SYSTEM,
        )
        s.commit()
    outcomes: list[str] = []

    def attempt() -> None:
        with Session(engine) as s:
            try:
                accounts.sign_in("racer", "wrong password!", session=s, lockout_threshold=6)
            except DomainError as exc:
                if exc.keep_changes:
                    s.commit()
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(engine) as s:
        user = s.exec(select(User).where(User.username == "racer")).one()
        failed = s.exec(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "sign_in_failed")
        ).one()
    with engine.connect() as conn:
        assert audit_services.verify_chain(conn).ok
    engine.dispose()
    assert len(outcomes) == 8
    assert user.locked_at is not None
    assert failed == 8
    assert outcomes.count("AccountLocked") >= 1


def test_sign_out_ends_a_copied_session_cookie(client: Any, session: Session, make_user: Any) -> None:
    make_user("ada", "admin")
    session.commit()
    assert sign_in(client, "ada").status_code == 302
    thief = client.application.test_client()
    cookie = client.get_cookie("trials_session")
    assert cookie is not None
    thief.set_cookie("trials_session", cookie.value)
    assert thief.get("/admin/users").status_code == 200
    page = client.get("/").get_data(as_text=True)
    client.post("/sign-out", data={"csrf_token": csrf_token(page)})
    assert thief.get("/admin/users").status_code == 302


def test_a_user_with_several_roles_signs_out_and_makes_tokens(
    client: Any, session: Session, make_site: Any, make_trial: Any, make_user: Any
) -> None:
    make_trial("MOOD-CBT")
    make_trial("OTHER-TRIAL")
    make_user("multi", "monitor:MOOD-CBT", "sponsor:OTHER-TRIAL", "statistician_blinded:OTHER-TRIAL")
    session.commit()
    assert sign_in(client, "multi").status_code == 302
    page = client.get("/account").get_data(as_text=True)
    made = client.post(
        "/account",
        data={"csrf_token": csrf_token(page), "name": "t", "scope": "read", "expires_in_days": "5"},
    )
    assert made.status_code == 200
    out = client.post("/sign-out", data={"csrf_token": csrf_token(page)})
    assert out.status_code == 302
    assert client.get("/").status_code == 302
