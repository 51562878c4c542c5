"""PostgreSQL stopped and started again under load: the same server process answers every
request during the outage with a clean 503 (problem+json on the API with Retry-After, an HTML
page on the web; no 500, no traceback), stores nothing half-written, and serves reads and
writes again once the database is back, without a restart.

The cluster is a private PostgreSQL 15 started for the test (never the shared one), run as the
`postgres` operating-system user when the tests run as root (initdb refuses root).
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PASSWORD
from tests.faults.conftest import (
    BASE,
    CONSENTED,
    TRANSPORT_ERRORS,
    Answer,
    call,
    chain_verifies,
    count,
    free_port,
    live_trial,
    wait_for,
)
from trials.core import migrate

PG_BIN = Path("/usr/lib/postgresql/15/bin")
LOOP_THREADS = 2
OUTAGE_ANSWERS = 12  # answers collected while the database is down, per stop


class PrivateCluster:
    """A PostgreSQL 15 cluster in a temporary directory, on a free port, its socket there too."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="trials-faults-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False
        self.socket_dir.mkdir()
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")

    def run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=120, check=False, cwd=self.root
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}{log}")

    def init(self) -> None:
        self.run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        self.run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )
        self.running = True

    def stop(self, mode: str) -> None:
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def remove(self) -> None:
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(
            f"the PostgreSQL 15 server binaries are not installed ({PG_BIN}): apt-get install postgresql-15"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: the PostgreSQL server cannot be started as postgres")
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def new_database(cluster: PrivateCluster) -> str:
    admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('CREATE DATABASE "trials"'))
    admin.dispose()
    url = cluster.url.rsplit("/", 1)[0] + "/trials"
    migrate.upgrade(url)
    return url


class WebClient:
    """A browser's session on the web app: cookies kept, redirects followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def request(self, path: str, form: dict[str, str] | None = None) -> Answer:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=body, headers={"Accept": "text/html"})
        try:
            with self.opener.open(request, timeout=60) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.headers, error.read())

    def sign_in(self, username: str) -> None:
        page = self.request("/sign-in").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
            r'name="csrf_token" value="([^"]+)"', page
        )
        assert token, page
        answer = self.request(
            "/sign-in", {"username": username, "password": PASSWORD, "csrf_token": token[1]}
        )
        assert answer.status == 200, answer.text[:500]
        assert "Sign out" in answer.text


@dataclass
class Outcome:
    kind: str  # "api read", "api write" or "web"
    started: float
    ended: float
    answer: Answer | None
    error: BaseException | None = None


class Load:
    """Threads sending API reads, API writes (screening a participant) and web page reads in
    turn, as fast as the server answers, until stopped; every outcome is kept."""

    def __init__(self, base: str, headers: dict[str, str], web: WebClient) -> None:
        self.base = base
        self.headers = headers
        self.web = web
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self.threads = [threading.Thread(target=self._work, args=(n,)) for n in range(LOOP_THREADS)]

    def _send(self, kind: str) -> Answer:
        if kind == "web":
            return self.web.request("/")
        if kind == "api read":
            return call(self.base, "GET", f"{BASE}/participants", headers=self.headers, timeout=60)
        screening = {
            "site_code": "LDS",
            "screened_on": CONSENTED.isoformat(),
            "age_years": 40,
            "screening_phq9": 13,
            "inclusion_met": True,
            "exclusion_present": False,
        }
        return call(
            self.base,
            "POST",
            f"{BASE}/participants",
            headers={**self.headers, "Content-Type": "application/json"},
            body=json.dumps(screening).encode(),
            timeout=60,
        )

    def _work(self, n: int) -> None:
        kinds = ("api read", "api write", "web")
        turn = n
        while not self.stop.is_set():
            kind = kinds[turn % len(kinds)]
            turn += 1
            started = time.monotonic()
            try:
                outcome = Outcome(kind, started, 0.0, self._send(kind))
            except TRANSPORT_ERRORS as error:
                outcome = Outcome(kind, started, 0.0, None, error)
            outcome.ended = time.monotonic()
            with self.lock:
                self.outcomes.append(outcome)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def since(self, moment: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.started >= moment]


def succeeded(outcome: Outcome) -> bool:
    return outcome.answer is not None and outcome.answer.status in (200, 201)


def clean_failure(outcome: Outcome) -> None:
    """A 503 that says the database is unavailable, with Retry-After, in the caller's format,
    leaking nothing of the error."""
    answer = outcome.answer
    assert answer is not None, f"{outcome.kind}: no answer ({outcome.error!r})"
    assert answer.status == 503, (outcome.kind, answer.status, answer.text[:500])
    assert answer.headers["Retry-After"] == "5"
    if outcome.kind == "web":
        assert answer.headers.get_content_type() == "text/html"
        assert "503" in answer.text
        assert "The database is unavailable" in answer.text
    else:
        assert answer.headers.get_content_type() == "application/problem+json"
        problem = answer.json()
        assert (problem["status"], problem["title"]) == (503, "Service unavailable")
        assert "the database is unavailable" in problem["detail"].lower()
    for leak in ("Traceback", "psycopg", "OperationalError", "sqlalchemy", "127.0.0.1"):
        assert leak not in answer.text, (outcome.kind, answer.text[:500])


def test_the_same_server_fails_cleanly_while_postgresql_is_down_and_recovers_without_a_restart(
    private_postgres: PrivateCluster, server_factory: Any
) -> None:
    cluster = private_postgres
    url = new_database(cluster)
    setup = live_trial(url)
    server = server_factory(url)
    workers = server.worker_pids()
    assert len(workers) == 2
    web = WebClient(server.base)
    web.sign_in("cora")
    load = Load(server.base, setup["headers"]["lds"], web)
    load.start()
    figures = {}
    try:
        for mode in ("fast", "immediate"):
            began = time.monotonic()
            wait_for(
                lambda began=began: (
                    sum(succeeded(o) and o.kind == "api write" for o in load.since(began)) >= 3
                ),
                "writes served before the stop",
            )
            cluster.stop(mode)
            down = time.monotonic()
            wait_for(
                lambda down=down: len(load.since(down)) >= OUTAGE_ANSWERS,
                f"answers during the outage ({mode})",
            )
            restarting = time.monotonic()
            cluster.start()
            up = time.monotonic()
            recovered = wait_for(
                lambda up=up: (
                    {o.kind for o in load.since(up) if succeeded(o)} >= {"api read", "api write", "web"}
                ),
                f"every kind of request served again after the {mode} stop",
            )
            outage = [o for o in load.since(down) if o.ended <= restarting]
            assert len(outage) >= OUTAGE_ANSWERS
            for outcome in outage:
                clean_failure(outcome)
            first = min(o.ended for o in load.since(up) if succeeded(o))
            figures[mode] = {"clean failures": len(outage), "recovered after (s)": round(first - up, 3)}
            assert recovered
            # Once the database accepts connections again no request fails: each worker's pooled
            # connections, closed by the stop, are pinged and replaced before use.
            for outcome in load.since(up):
                assert succeeded(outcome), (mode, outcome.kind, outcome.answer and outcome.answer.status)
    finally:
        load.finish()
    # A restart while no request comes: the pooled connections it closed are found stale on
    # their next use, and the first requests after it succeed too.
    cluster.stop("fast")
    cluster.start()
    for kind in ("api read", "api write", "web") * 3:
        started = time.monotonic()
        outcome = Outcome(kind, started, time.monotonic(), load._send(kind))
        load.outcomes.append(outcome)
        assert succeeded(outcome), (kind, outcome.answer and outcome.answer.status)
    # Nothing but successes and clean 503s, from the same worker processes throughout.
    for outcome in load.outcomes:
        if not succeeded(outcome):
            clean_failure(outcome)
    assert server.worker_pids() == workers
    assert server.process is not None
    assert server.process.poll() is None
    writes = sum(succeeded(o) and o.kind == "api write" for o in load.outcomes)
    assert count(url, "SELECT count(*) FROM participant") == writes
    assert chain_verifies(url)
