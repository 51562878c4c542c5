"""Database kernel: metadata naming convention, engine, UTC timestamps, the session boundary.

Services take a `Session` and only flush; the request (or CLI command) that called them commits
once on success and rolls back on any error (ARCHITECTURE.md convention 4).
"""

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from flask import Flask, Response, current_app, g
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Set before any table is declared: every constraint gets a deterministic name, which alembic
# needs to alter or drop it later on SQLite and PostgreSQL alike.
SQLModel.metadata = MetaData(naming_convention=NAMING_CONVENTION)
metadata = SQLModel.metadata


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def utctoday() -> date:
    """Today's date in UTC: no clinical date may be later."""
    return utcnow().date()


def new_id() -> uuid.UUID:
    """A new random primary key."""
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always stored and returned as timezone-aware UTC.

    SQLite keeps no time zone; PostgreSQL's timestamptz does. Naive datetimes are refused on the
    way in so that no local time can slip into the record.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: timestamps must be timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


SNAPSHOT_OPTION = "trials_snapshot"

log = logging.getLogger(__name__)

# SQLite: how often BEGIN IMMEDIATE is tried again when the write lock stays busy past the busy
# timeout, and the first pause between tries (doubled each time).
SQLITE_BEGIN_ATTEMPTS = 6
SQLITE_BEGIN_BACKOFF = 0.05
SQLITE_BUSY_LOG = "SQLite write lock busy at BEGIN IMMEDIATE"


class SQLiteBeginRetries:
    """Count of the BEGIN IMMEDIATE statements this process tried again on a busy write lock."""

    count = 0


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and real transactions;
    PostgreSQL gets connections checked before use and a connect timeout."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {})["timeout"] = 30
    elif url.startswith("postgresql"):
        _postgresql_options(kwargs)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


# Seconds to wait for a PostgreSQL connection before the request fails (with a 503).
PG_CONNECT_TIMEOUT = 10


def _postgresql_options(kwargs: dict[str, Any]) -> None:
    # A pooled connection that the server closed (a restart, an administrator's termination)
    # is found by a ping when it is checked out and replaced, so the application recovers
    # without a restart; while the server is down the ping's reconnect fails at once and the
    # request is answered 503 (trials.core.error_handlers).
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", PG_CONNECT_TIMEOUT)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; the workaround
    # documented by SQLAlchemy ("Serializable isolation / Savepoints / Transactional DDL") is to
    # disable it and emit BEGIN ourselves.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # IMMEDIATE takes the write lock at the start: a deferred transaction that reads and then
    # writes fails at once with "database is locked" when another writer committed in between
    # (the busy timeout cannot help it), whereas an immediate one waits its turn.
    # A snapshot read (`Database.snapshot`) begins DEFERRED: in WAL mode it reads one consistent
    # state of the database without holding the write lock, so writers go on meanwhile.
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        snapshot = connection.get_execution_options().get(SNAPSHOT_OPTION, False)
        if snapshot:
            connection.exec_driver_sql("BEGIN DEFERRED")
        else:
            _begin_immediate(connection)


def _is_busy(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == sqlite3.SQLITE_BUSY)
    return "database is locked" in str(exc.orig)


def _begin_immediate(connection: Any) -> None:
    """BEGIN IMMEDIATE, tried again with a growing pause while SQLite answers that the database
    is locked (after its busy timeout, or at once where SQLite does not wait, as while another
    connection recovers the WAL index). Nothing has been done in the transaction before BEGIN,
    so trying again is safe; each retry is counted and logged, and the last failure raised."""
    pause = SQLITE_BEGIN_BACKOFF
    for attempt in range(1, SQLITE_BEGIN_ATTEMPTS + 1):
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if attempt == SQLITE_BEGIN_ATTEMPTS or not _is_busy(exc):
                raise
            SQLiteBeginRetries.count += 1
            log.warning(
                "%s (%s): retry %d of %d in %.2f s",
                SQLITE_BUSY_LOG,
                exc.orig,
                attempt,
                SQLITE_BEGIN_ATTEMPTS - 1,
                pause,
            )
            time.sleep(pause)
            pause *= 2


class DatabaseState:
    """Per-application engine and session factory, kept in `app.extensions`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory: sessionmaker[Session] = sessionmaker(
            bind=engine, class_=Session, expire_on_commit=False
        )


class Database:
    """The Flask extension: one session per request, committed once, in one place."""

    def init_app(self, app: Flask) -> None:
        state = DatabaseState(make_engine(app.config["DATABASE_URL"]))
        app.extensions["trials_db"] = state
        app.after_request(self._finish_request)
        app.teardown_appcontext(self._close)

    @property
    def state(self) -> DatabaseState:
        state: DatabaseState = current_app.extensions["trials_db"]
        return state

    @property
    def engine(self) -> Engine:
        return self.state.engine

    @property
    def session(self) -> Session:
        """The session of the current request or command, created on first use."""
        if "db_session" not in g:
            g.db_session = self.state.session_factory()
        session: Session = g.db_session
        return session

    def has_session(self) -> bool:
        return "db_session" in g

    @staticmethod
    def keep_changes_on_error() -> None:
        """Commit this request's changes even if it answers with an error.

        For records that must survive the refusal they document: a failed sign-in and the
        account lock it causes. Any exception still rolls everything back.
        """
        g.db_keep_on_error = True

    @staticmethod
    def _finish_request(response: Response) -> Response:
        # Commit before the response leaves, so that a failed commit is a failed request.
        session: Session | None = g.pop("db_session", None)
        if session is None:
            return response
        try:
            if response.status_code < 400 or g.pop("db_keep_on_error", False):
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()
        return response

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A session that reads one consistent state of the database, for long reads (report
        generation) that must not hold up writers: REPEATABLE READ on PostgreSQL, a deferred
        transaction on SQLite (WAL). Always rolled back: it is not for writing."""
        connection = self.engine.connect()
        if connection.dialect.name == "sqlite":
            connection = connection.execution_options(**{SNAPSHOT_OPTION: True})
        else:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        session = Session(bind=connection, expire_on_commit=False)
        try:
            yield session
        finally:
            session.rollback()
            session.close()
            connection.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit once on success, roll back on any exception (CLI commands, jobs).

        A domain error raised with `keep_changes` (a refusal that put itself on the audit
        trail) commits what was flushed before it, as a request does.
        """
        from trials.core.errors import DomainError

        session = self.session
        try:
            yield session
            session.commit()
        except DomainError as exc:
            if exc.keep_changes:
                session.commit()
            else:
                session.rollback()
            raise
        except BaseException:
            session.rollback()
            raise


db = Database()
