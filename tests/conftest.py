"""Fixtures: a migrated database per backend, a rolled-back transaction per test, app and client.

Every database test runs on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL too.
"""

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from trials import create_app
from trials.core import migrate
from trials.core.accounts import services
from trials.core.accounts.models import GrantCreate, Role, SiteCreate, TrialCreate, UserCreate
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.db import make_engine

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])
PASSWORD = "correct horse battery staple"
# Cheap argon2id parameters for tests; production uses argon2-cffi's defaults.
FAST_HASHING = {"time_cost": 1, "memory_cost_kib": 64, "parallelism": 1}
services.configure_password_hashing(**FAST_HASHING)


def _pg_admin_url() -> str:
    return os.environ["TEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)


def create_database(backend: str, tmp_dir: Any) -> str:
    """A new, empty database of `backend`; returns its URL."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir}/{uuid.uuid4().hex}.sqlite"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"trials_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return re.sub(r"/[^/?]+(\?|$)", f"/{name}\\1", _pg_admin_url(), count=1)


def drop_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    name = url.rsplit("/", 1)[1].split("?")[0]
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# Fixtures built once per worker and shared by tests of several files.
SHARED_FIXTURES = ("report_trial", "world")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group tests for pytest-xdist (`--dist loadgroup`, as scripts/test runs it): the tests of
    one shared session fixture and database run on one worker, so that fixture is built once per
    database, not once per worker. Other tests go to whichever worker is free."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        shared = next((name for name in SHARED_FIXTURES if name in names), None)
        if shared is None:
            continue
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend", "-") if callspec is not None else "-"
        item.add_marker(pytest.mark.xdist_group(f"{shared}-{backend}"))  # xdist splits on "@"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = create_database(backend, tmp_path_factory.mktemp("db"))
    migrate.upgrade(url)
    yield url
    drop_database(url)


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Any) -> Iterator[str]:
    """A migrated database of its own, for tests that commit (CLI, concurrency, tampering)."""
    url = create_database(backend, tmp_path)
    migrate.upgrade(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        transaction = conn.begin()
        yield conn
        transaction.rollback()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    """A session whose commits only release savepoints of the test's transaction."""
    with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as s:
        audit.set_actor(s, audit.Actor.system("system"))
        yield s


def app_config(database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "ENV": "testing",
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "PASSWORD_HASHING": FAST_HASHING,
        **extra,
    }


@pytest.fixture
def app(database_url: str, connection: Connection) -> Iterator[Any]:
    app = create_app(app_config(database_url))
    state = app.extensions["trials_db"]
    state.session_factory = sessionmaker(
        bind=connection,
        class_=Session,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )
    yield app
    state.engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def make_site(session: Session) -> Callable[..., Any]:
    def make(code: str = "LON", name: str = "London Clinic", country: str = "GB") -> Any:
        return services.create_site(
            SiteCreate(code=code, name=name, country=country), session=session, by=services.SYSTEM
        )

    return make


@pytest.fixture
def make_trial(session: Session) -> Callable[..., Any]:
    def make(code: str = "MOOD-CBT", title: str = "App-based CBT for depression") -> Any:
        return services.create_trial(TrialCreate(code=code, title=title), session=session, by=services.SYSTEM)

    return make


def create_user_with_grants(
    session: Session, username: str, *grants: str, password: str = PASSWORD, name: str | None = None
) -> tuple[Any, Principal]:
    """A user and their grants, e.g. ("ann", "coordinator:MOOD-CBT:LON") -> (User, Principal)."""
    user = services.create_user(
        UserCreate(username=username, printed_name=name or username.title(), password=password),
        session=session,
        by=services.SYSTEM,
    )
    for spec in grants:
        role, _, rest = spec.partition(":")
        trial, _, site = rest.partition(":")
        services.grant_role(
            username,
            GrantCreate(role=Role(role), trial_code=trial or None, site_code=site or None),
            session=session,
            by=services.SYSTEM,
        )
    session.flush()
    return user, services.load_principal(user, session=session)


def site_and_user_makers(session: Session) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """`make_site(code, name, country)` and `make_user(username, *grants)` on a session of the
    caller's own (a committed database outside the per-test fixtures)."""

    def make_site(code: str, name: str, country: str) -> Any:
        return services.create_site(
            SiteCreate(code=code, name=name, country=country), session=session, by=services.SYSTEM
        )

    def make_user(username: str, *grants: str) -> Any:
        return create_user_with_grants(session, username, *grants)

    return make_site, make_user


@pytest.fixture
def make_user(session: Session) -> Callable[..., Any]:
    """make_user("ann", "coordinator:MOOD-CBT:LON", ...) -> (User, Principal)."""

    def make(
        username: str, *grants: str, password: str = PASSWORD, name: str | None = None
    ) -> tuple[Any, Principal]:
        return create_user_with_grants(session, username, *grants, password=password, name=name)

    return make


EXAMPLE_TRIAL = "MOOD-CBT-01"


def set_up_example_trial(
    session: Session,
    make_site: Callable[..., Any],
    make_user: Callable[..., Any],
    staff: dict[str, str],
    *,
    live_seed: bytes | None = None,
    slots_per_stratum: int = 12,
    blinded_roles: list[str] | None = None,
) -> dict[str, Principal]:
    """The example protocol registered, its sites created, locked by the sponsor (who must be in
    `staff`, e.g. {"sponsor": "sam:sponsor"}); live when a seed is given. Returns the principals.
    `blinded_roles` replaces the protocol's list of blinded roles."""
    from protocols import services as protocols
    from protocols.document import example_protocol_path
    from trials.randomization import services as randomization

    text = example_protocol_path().read_bytes()
    if blinded_roles is not None:
        original = b"blinded_roles: [outcome_assessor, statistician, data_manager]"
        assert original in text
        text = text.replace(original, f"blinded_roles: [{', '.join(blinded_roles)}]".encode())
    source = protocols.Source(text, "yaml")
    for site in source.parse().document.sites:
        make_site(site.code, site.name, site.country)
    protocols.register(source, session=session, by=services.SYSTEM)
    people = {}
    for key, spec in staff.items():
        username, _, grant = spec.partition(":")
        people[key] = make_user(username, grant.replace("TRIAL", EXAMPLE_TRIAL))[1]
    protocols.lock(
        EXAMPLE_TRIAL, 1, password=PASSWORD, session=session, by=people["sponsor"], lockout_threshold=6
    )
    if live_seed is not None:
        randomization.go_live(
            EXAMPLE_TRIAL,
            session=session,
            by=people["sponsor"],
            seed=live_seed,
            slots_per_stratum=slots_per_stratum,
        )
    session.flush()
    return people


def bearer(session: Session, principal: Principal, scope: str = "write") -> dict[str, str]:
    """Headers carrying a new API token of `principal`."""
    from trials.core.accounts.models import TokenCreate

    _token, secret = services.create_token(
        TokenCreate(name="tests", scope=scope), session=session, by=principal
    )
    session.flush()
    return {"Authorization": f"Bearer {secret}"}


def run_cli(url: str, *args: str, input: str | None = None) -> Any:
    """Invoke the `trials` command line on the database at `url`, as a shell would."""
    from click.testing import CliRunner

    from trials.cli import main

    env = {
        "TRIALS_DATABASE_URL": url,
        "TRIALS_ENV": "testing",
        "TRIALS_PASSWORD_HASHING": json.dumps(FAST_HASHING),
    }
    return CliRunner().invoke(main, list(args), env=env, input=input)


def query_rows(url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of a SQL query on the database at `url`, outside any test transaction."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: Any, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/sign-in")
    return client.post(
        "/sign-in",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_token(page.get_data(as_text=True)),
        },
    )
