"""SIGKILL of the server in the middle of a CSV import: the import is stored whole or not at all.

The server is frozen (SIGSTOP) once it is seen writing the file's rows from outside, checked to
have committed nothing and answered nothing, then killed (SIGKILL); what the killed import wrote
must be gone, the audit chain must verify, and a new server must take the same file whole.
"""

import csv
import io
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import create_engine, text

from tests.faults.conftest import (
    BASE,
    TODAY,
    TRANSPORT_ERRORS,
    call,
    chain_verifies,
    committed_count,
    count,
    live_trial,
    sqlite_path,
    wait_for,
)

PARTICIPANTS = 100
DAYS = 700  # engagement days per participant: 70,000 rows, a couple of seconds of writing
MB = 1024 * 1024
TABLES = (
    "engagement_day",
    "assessment",
    "data_query",
    "safety_event",
    "notification",
    "outbox_message",
    "import_batch",
    "audit_entry",
)


def engagement_file(labels: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(("participant", "day", "sessions", "minutes", "modules_completed"))
    for label in labels:
        for n in range(DAYS):
            writer.writerow((label, (TODAY - timedelta(days=n)).isoformat(), 1 + n % 3, 5 + n % 40, n % 2))
    return buffer.getvalue().encode()


def stored(url: str) -> dict[str, int]:
    found = {table: count(url, f'SELECT count(*) FROM "{table}"') for table in TABLES}
    found["import audit entries"] = count(
        url, "SELECT count(*) FROM audit_entry WHERE reason LIKE 'CSV import of %'"
    )
    return found


@contextmanager
def writing_rows(url: str) -> Iterator[Callable[[], bool]]:
    """A probe that is true once the server has written about half of the file's rows,
    uncommitted (several chunks of `CHUNK_ROWS`, so that a chunk committed on its own would show):
    on SQLite the write-ahead log, emptied before the upload, has grown by the pages spilled
    from the writer's cache (the whole import adds about 30 MB); on PostgreSQL the table's heap
    has grown by the uncommitted rows (about 8 MB in all). Rows committed before the end of the
    import (which must never be) make it true as well, for the test to fail on them."""
    if url.startswith("sqlite"):
        wal = sqlite_path(url).with_name(sqlite_path(url).name + "-wal")
        yield lambda: (wal.exists() and wal.stat().st_size > 16 * MB) or rows_committed(url)
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    query = text("SELECT pg_relation_size('engagement_day')")

    def copying() -> bool:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one()) > 4 * MB or rows_committed(url)

    try:
        yield copying
    finally:
        engine.dispose()


def rows_committed(url: str) -> bool:
    return committed_count(url, "engagement_day") > 0


def empty_wal(url: str) -> None:
    """Checkpoint and truncate SQLite's write-ahead log, so that its growth shows new writes."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(sqlite_path(url))
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0
        finally:
            conn.close()


def test_a_server_killed_mid_import_stores_none_of_it_and_a_new_server_takes_it_whole(
    fresh_database_url: str, server_factory: Any
) -> None:
    url = fresh_database_url
    setup = live_trial(url, randomized=PARTICIPANTS, randomized_days_ago=DAYS)
    content = engagement_file(setup["randomized"])
    headers = {**setup["headers"]["lds"], "Content-Type": "text/csv"}
    server = server_factory(url)
    before = stored(url)
    empty_wal(url)
    outcome: dict[str, Any] = {}

    def upload() -> None:
        try:
            outcome["answer"] = call(
                server.base, "POST", f"{BASE}/imports/engagement", headers=headers, body=content
            )
        except TRANSPORT_ERRORS as error:
            outcome["error"] = error

    uploading = threading.Thread(target=upload)
    uploading.start()
    try:
        with writing_rows(url) as probe:
            wait_for(probe, "the server writing the file's rows")
        server.signal_group(signal.SIGSTOP)
        # Frozen mid-write: no answer sent, nothing of the file committed.
        assert not outcome
        assert committed_count(url, "engagement_day") == 0
        assert committed_count(url, "import_batch") == 0
        server.kill()
    finally:
        server.kill()
        uploading.join(timeout=60)
    assert "answer" not in outcome, outcome["answer"].text
    assert isinstance(outcome["error"], TRANSPORT_ERRORS)

    after = stored(url)
    assert after == before
    assert after["engagement_day"] == after["import_batch"] == after["import audit entries"] == 0
    chain_verifies(url)

    # A new server takes the same file whole: it was never recorded as imported.
    server = server_factory(url)
    answer = call(server.base, "POST", f"{BASE}/imports/engagement", headers=headers, body=content)
    assert answer.status == 201, answer.text
    assert answer.json()["row_count"] == PARTICIPANTS * DAYS
    again = stored(url)
    assert again["engagement_day"] == PARTICIPANTS * DAYS
    assert again["import_batch"] == 1
    assert again["import audit entries"] >= 1
    assert chain_verifies(url) == again["audit_entry"]
