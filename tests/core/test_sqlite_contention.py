"""SQLite write-lock contention: a busy BEGIN IMMEDIATE is tried again, never an error at once.

Two engines on one WAL database file, as two application processes would have. The second
engine's busy timeout is cut to a few milliseconds so that the lock held by the first outlasts
it, as a long queue of writers would outlast the production timeout.
"""

import logging
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from trials.core import db as db_module
from trials.core.db import SQLITE_BUSY_LOG, SQLiteBeginRetries, make_engine


def _impatient_engine(url: str) -> Engine:
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=10")

    return engine


@pytest.fixture
def url(tmp_path: Any) -> str:
    url = f"sqlite:///{tmp_path}/contention.sqlite"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE entry (writer TEXT NOT NULL)"))
    engine.dispose()
    return url


def _hold_write_lock(engine: Engine, locked: threading.Event, release: threading.Event) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO entry (writer) VALUES ('first')"))
        locked.set()
        release.wait(10)


def test_busy_begin_is_retried_until_the_lock_is_free(url: str, caplog: pytest.LogCaptureFixture) -> None:
    first, second = make_engine(url), _impatient_engine(url)
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(first, locked, release))
    holder.start()
    assert locked.wait(10)
    # The lock is released while the second writer is backing off between tries.
    threading.Timer(0.2, release.set).start()
    before = SQLiteBeginRetries.count
    with caplog.at_level(logging.WARNING, logger="trials.core.db"), second.begin() as conn:
        conn.execute(text("INSERT INTO entry (writer) VALUES ('second')"))
    holder.join(10)
    retries = SQLiteBeginRetries.count - before
    assert retries >= 1
    assert sum(SQLITE_BUSY_LOG in r.getMessage() for r in caplog.records) == retries
    with first.connect() as conn:
        writers = conn.execute(text("SELECT writer FROM entry ORDER BY rowid")).scalars().all()
    assert writers == ["first", "second"]
    first.dispose()
    second.dispose()


def test_retries_are_bounded(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "SQLITE_BEGIN_ATTEMPTS", 3)
    monkeypatch.setattr(db_module, "SQLITE_BEGIN_BACKOFF", 0.01)
    first, second = make_engine(url), _impatient_engine(url)
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(first, locked, release))
    holder.start()
    assert locked.wait(10)
    before = SQLiteBeginRetries.count
    try:
        with pytest.raises(OperationalError, match="database is locked"), second.begin() as conn:
            conn.execute(text("INSERT INTO entry (writer) VALUES ('second')"))
    finally:
        release.set()
        holder.join(10)
    assert SQLiteBeginRetries.count - before == 2
    with first.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM entry")).scalar_one() == 1
    first.dispose()
    second.dispose()
