"""The real server as a subprocess on a database of its own, and what the fault tests set up.

A `Server` is gunicorn serving `trials:create_app()` (as `trials serve` does) in a process group
of its own, so that SIGKILL reaches the master and its workers at once. The fixture kills the
group and waits for the port to be free again whether the test passed or failed.
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from tests.conftest import (
    FAST_HASHING,
    bearer,
    set_up_example_trial,
    site_and_user_makers,
)
from trials.core.audit import services as audit
from trials.core.db import make_engine
from trials.participants import services as participants
from trials.participants.models import ScreeningCreate
from trials.randomization import services as randomization

CODE = "MOOD-CBT-01"
BASE = f"/api/v1/trials/{CODE}"
TODAY = datetime.now(UTC).date()
CONSENTED = TODAY - timedelta(days=730)
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "man": "manny:coordinator:TRIAL:MAN",
}
SECRET_KEY = "fault-tests-secret-key"
STARTUP_SECONDS = 60
# What a request that never got its answer raises: refused, reset, or cut off mid-response.
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


class Answer:
    """An HTTP response: status, headers and body."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base: str,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 120,
) -> Answer:
    """One HTTP request; an error status is an answer too. A connection refused or reset raises
    OSError (urllib's URLError, ConnectionError or http.client's errors)."""
    request = urllib.request.Request(f"{base}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.headers, error.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nothing_listens(port: int) -> bool:
    """Whether no server listens on the port (connections closed there may linger in TIME_WAIT,
    which a new server's SO_REUSEADDR ignores)."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Server:
    """gunicorn serving the app on `url`'s database, on a free port, in its own process group."""

    def __init__(self, database_url: str, log_path: Path, workers: int = 2) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Server":
        gunicorn = Path(sys.executable).with_name("gunicorn")
        env = {
            **os.environ,
            "TRIALS_DATABASE_URL": self.database_url,
            "TRIALS_ENV": "testing",
            "TRIALS_SECRET_KEY": SECRET_KEY,
            "TRIALS_PASSWORD_HASHING": json.dumps(FAST_HASHING),
            # Plain HTTP on the loopback: the session cookie must travel without TLS.
            "TRIALS_SESSION_COOKIE_SECURE": "false",
        }
        argv = [str(gunicorn), "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)]
        argv += ["--timeout", "120", "trials:create_app()"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {self.log()}")
            try:
                if call(self.base, "GET", "/api/v1/openapi.json").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {STARTUP_SECONDS} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> set[int]:
        """The gunicorn workers: the master's living children."""
        return {pid for pid, state, ppid, _group in _processes() if ppid == self.pid and state not in "ZX"}

    def signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group (master and workers) and reap the master."""
        if self.process is None:
            return
        if self.process.poll() is None or self._group_alive():
            self.signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        # The workers, orphaned, die on their own signal; wait until none is left running.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._group_alive():
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not nothing_listens(self.port):
            time.sleep(0.05)

    def _group_alive(self) -> bool:
        return any(group == self.pid and state not in "ZX" for _pid, state, _ppid, group in _processes())


def _processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        found.append((int(entry.name), state, int(ppid), int(group)))
    return found


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """server_factory(database_url) -> a started Server; every server is killed at teardown."""
    started: list[Server] = []

    def start(database_url: str, workers: int = 2) -> Server:
        server = Server(database_url, tmp_path / f"server-{len(started)}.log", workers)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


def _enrolled(session: Session, by: Any, site: str, phq9: int = 12) -> str:
    data = ScreeningCreate.model_validate(
        {
            "site_code": site,
            "screened_on": CONSENTED,
            "age_years": 30,
            "screening_phq9": phq9,
            "inclusion_met": True,
            "exclusion_present": False,
        }
    )
    label = participants.screen(CODE, data, session=session, by=by, today=TODAY).label
    participants.enrol(CODE, label, CONSENTED, session=session, by=by, today=TODAY)
    return label


def live_trial(
    url: str, *, randomized: int = 0, enrolled: dict[str, int] | None = None, randomized_days_ago: int = 100
) -> dict[str, Any]:
    """Commit on the database at `url`: the example trial locked and live, its staff, `randomized`
    participants at LDS randomized `randomized_days_ago` days ago, and `enrolled` participants per
    site not yet randomized, their screening PHQ-9 alternately 12 and 16 (the two severity strata
    of each site). Returns their labels and API token headers for the staff."""
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            audit.set_actor(session, audit.Actor.system())

            make_site, make_user = site_and_user_makers(session)

            people = set_up_example_trial(
                session, make_site, make_user, STAFF, live_seed=b"\x09" * 32, slots_per_stratum=120
            )
            labels = []
            for _ in range(randomized):
                label = _enrolled(session, people["lds"], "LDS")
                slot = randomization.randomize(CODE, label, session=session, by=people["lds"])
                with audit.reason(session, "test set-up: randomization dated in the past"):
                    slot.randomized_at = datetime.now(UTC) - timedelta(days=randomized_days_ago)
                    session.add(slot)
                labels.append(label)
            waiting = {
                site: [_enrolled(session, people[site.lower()], site, (12, 16)[i % 2]) for i in range(n)]
                for site, n in (enrolled or {}).items()
            }
            headers = {name: bearer(session, principal) for name, principal in people.items()}
            session.commit()
    finally:
        engine.dispose()
    return {"randomized": labels, "enrolled": waiting, "headers": headers}


def count(url: str, sql: str, **params: Any) -> int:
    """The single integer a SQL query returns on the database at `url`, read afresh."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


def chain_verifies(url: str) -> int:
    """Verify the audit chain of the database at `url`; the entries checked."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            report = audit.verify_chain(conn)
    finally:
        engine.dispose()
    assert report.ok, report
    return report.entries_checked


def wait_for(condition: Callable[[], Any], what: str, *, deadline_seconds: float = 60) -> Any:
    """Poll `condition` until it returns something true, and return that; fail naming `what` if
    it never does (the deadline only stops a broken test from hanging)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.002)
    raise AssertionError(f"never happened within {deadline_seconds} s: {what}")


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def committed_count(url: str, table: str) -> int:
    """Rows of `table` committed, read without waiting for any lock: a read-only SQLite
    connection (WAL readers never wait for the writer) or a PostgreSQL autocommit one."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True)
        try:
            return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
        finally:
            conn.close()
    return count(url, f'SELECT count(*) FROM "{table}"')
