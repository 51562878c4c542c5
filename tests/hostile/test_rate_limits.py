"""Rate limits per client address on sign-in, password re-entry and self-report links."""

import ipaddress
import random
import time
import types
from collections.abc import Iterator
from typing import Any

import limits.storage.memory
import pytest
from sqlalchemy import Connection, select
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from tests.conftest import PASSWORD, app_config, bearer, csrf_token
from trials import create_app
from trials.core.accounts.models import User
from trials.core.audit.models import AuditEntry
from trials.core.config import ConfigurationError

LIMIT = 3


def limited(database_url: str, connection: Connection, **extra: Any) -> Any:
    config = {"RATELIMIT_ENABLED": True, "SIGN_IN_RATE_LIMIT": f"{LIMIT} per minute", **extra}
    app = create_app(app_config(database_url, REDIS_URL=None, **config))
    app.extensions["trials_db"].session_factory = sessionmaker(
        bind=connection, class_=Session, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    return app


@pytest.fixture
def app(database_url: str, connection: Connection) -> Iterator[Any]:
    """The app with the limits on: three sign-in attempts a minute, counted in memory."""
    app = limited(database_url, connection, EPRO_RATE_LIMIT="2 per hour")
    yield app
    app.extensions["trials_db"].engine.dispose()


@pytest.fixture
def ann(make_site: Any, make_trial: Any, make_user: Any) -> Any:
    make_site()
    make_trial()
    return make_user("ann", "coordinator:MOOD-CBT:LON")


def attempt(client: Any, username: str = "ann", password: str = "wrong", address: str = "192.0.2.1") -> Any:
    page = client.get("/sign-in", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    form = {"username": username, "password": password, "csrf_token": csrf_token(page)}
    return client.post("/sign-in", data=form, environ_base={"REMOTE_ADDR": address})


def events(session: Session, action: str) -> list[AuditEntry]:
    return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).scalars())  # type: ignore[call-overload]


def test_the_attempt_over_the_limit_is_refused_with_429_and_retry_after(
    client: Any, session: Session, ann: Any
) -> None:
    for _ in range(LIMIT):
        assert attempt(client).status_code == 401
    refused = attempt(client)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 61  # the window, rounded up
    assert refused.mimetype == "text/html"
    page = refused.get_data(as_text=True)
    assert "too many attempts from your address" in page
    assert 'name="password"' in page  # the sign-in page, with a plain message
    # The refused attempt reached no password check: it is no failed sign-in.
    user = session.exec(select(User).where(User.username == "ann")).scalar_one()  # type: ignore[call-overload]
    session.refresh(user)
    assert user.failed_sign_ins == LIMIT
    assert len(events(session, "sign_in_failed")) == LIMIT
    # Even the right password waits for the window to end.
    assert attempt(client, password=PASSWORD).status_code == 429


def test_a_breach_is_audited_once_per_window(client: Any, session: Session, ann: Any) -> None:
    for _ in range(LIMIT + 5):
        attempt(client, username="nobody")
    recorded = events(session, "sign_in_rate_limited")
    assert len(recorded) == 1
    assert "192.0.2.1" in (recorded[0].new_value or "")
    assert recorded[0].channel == "web"


def test_unknown_usernames_and_spraying_across_accounts_count_together(
    client: Any, make_user: Any, ann: Any
) -> None:
    for number in range(LIMIT):
        make_user(f"user{number}")
        assert attempt(client, username=f"user{number}").status_code == 401
    assert attempt(client, username="no-such-user").status_code == 429


def test_another_address_is_not_limited(client: Any, ann: Any) -> None:
    for _ in range(LIMIT + 1):
        attempt(client, address="192.0.2.1")
    assert attempt(client, address="192.0.2.1").status_code == 429
    assert attempt(client, address="198.51.100.7", password=PASSWORD).status_code == 302


def test_x_forwarded_for_is_believed_only_behind_a_configured_proxy(
    database_url: str, connection: Connection, client: Any, ann: Any
) -> None:
    def spoofed(client: Any, number: int) -> Any:
        page = client.get("/sign-in").get_data(as_text=True)
        form = {"username": "ann", "password": "wrong", "csrf_token": csrf_token(page)}
        return client.post("/sign-in", data=form, headers={"X-Forwarded-For": f"203.0.113.{number}"})

    # No trusted proxy: a client cannot pose as many by changing the header.
    assert [spoofed(client, n).status_code for n in range(LIMIT + 1)] == [401] * LIMIT + [429]
    behind = limited(database_url, connection, TRUSTED_PROXIES=1, LOCKOUT_THRESHOLD=100)
    proxied = behind.test_client()
    assert [spoofed(proxied, 1).status_code for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    assert spoofed(proxied, 2).status_code == 401  # the proxy says it is another client
    behind.extensions["trials_db"].engine.dispose()


def test_the_window_resets(client: Any, ann: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(LIMIT):
        attempt(client)
    assert attempt(client).status_code == 429
    later = time.time() + 61
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(time=lambda: later))
    assert attempt(client, password=PASSWORD).status_code == 302


def test_password_re_entry_on_the_api_is_limited_with_problem_json(
    client: Any, session: Session, ann: Any
) -> None:
    headers = bearer(session, ann[1])
    url = "/api/v1/protocols/NONE/versions/1/lock"
    for _ in range(LIMIT):
        assert client.post(url, json={"password": "x"}, headers=headers).status_code != 429
    refused = client.post(url, json={"password": "x"}, headers=headers)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["status"] == 429
    assert int(refused.headers["Retry-After"]) >= 1
    (entry,) = events(session, "rate_limited")
    assert entry.channel == "api"


def test_guessing_self_report_links_is_limited(client: Any, session: Session) -> None:
    assert client.get("/epro/guess-1").status_code == 404
    assert client.get("/epro/guess-2").status_code == 404
    refused = client.get("/epro/guess-3")
    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert "guess-3" not in refused.get_data(as_text=True)
    assert len(events(session, "rate_limited")) == 1


def test_limits_are_off_in_tests_unless_turned_on_and_on_in_production(database_url: str) -> None:
    testing = create_app(app_config(database_url))
    assert testing.config["RATELIMIT_ENABLED"] is False
    production = create_app({**app_config(database_url), "ENV": "production", "TESTING": False})
    assert production.config["RATELIMIT_ENABLED"] is True
    for app in (testing, production):
        app.extensions["trials_db"].engine.dispose()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SIGN_IN_RATE_LIMIT", "lots"),
        ("SIGN_IN_RATE_LIMIT", ""),
        ("EPRO_RATE_LIMIT", "5 per fortnight"),
        ("RATELIMIT_ENABLED", "yes"),
        ("TRUSTED_PROXIES", -1),
        ("MAX_UPLOAD_MB", 0),
    ],
)
def test_bad_limit_settings_are_refused_at_start_up(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        create_app(app_config("sqlite://", **{key: value}))


def test_processes_sharing_redis_share_the_count(database_url: str, connection: Connection, ann: Any) -> None:
    redis = {"RATELIMIT_STORAGE_URL": "redis://127.0.0.1:6379/14", "LOCKOUT_THRESHOLD": 100}
    first, second = limited(database_url, connection, **redis), limited(database_url, connection, **redis)
    address = str(ipaddress.IPv6Address(random.getrandbits(128)))  # its own counter on a shared Redis
    try:
        assert attempt(first.test_client(), address=address).status_code == 401
        assert attempt(second.test_client(), address=address).status_code == 401
        assert attempt(first.test_client(), address=address).status_code == 401
        assert attempt(second.test_client(), address=address).status_code == 429
    finally:
        for app in (first, second):
            app.extensions["trials_db"].engine.dispose()


def test_an_unreachable_redis_falls_back_to_counting_in_memory(
    database_url: str, connection: Connection, ann: Any
) -> None:
    app = limited(database_url, connection, RATELIMIT_STORAGE_URL="redis://127.0.0.1:1/0")
    client = app.test_client()
    try:
        assert [attempt(client).status_code for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    finally:
        app.extensions["trials_db"].engine.dispose()
