"""Load: gunicorn serving the API to concurrent coordinators who randomize and enter assessments.

Run: .venv/bin/python bench/load.py [--backend postgresql|sqlite|both] [--clients 50]
     [--duration 60] [--workers 4] [--json]

For each backend, a database of its own (a new PostgreSQL database on --pg-url, created and
dropped; or a SQLite file in WAL mode in a temporary folder) is migrated and seeded through the
platform's services: the example protocol registered and locked by a sponsor, the trial taken
live, one coordinator per client at a site of the trial with a write API token, and for each
client its own enrolled participants, some randomized 100 days ago (their follow-up visits are
due) and the others waiting to be randomized. gunicorn then serves the app with sync workers,
and the clients, one thread each, post for --duration seconds: randomize one of their
participants, enter its baseline PHQ-9 and GAD-7, enter a follow-up assessment of a participant
randomized earlier, and so on. Each client works on its own participants only, so no request
collides with another on a domain rule: every answer that is not 2xx is an error.

Afterwards the database is reconciled with the answers: every assessment answered 201 is stored
exactly once and no other is; the participants answered 200 to randomize are exactly those
holding a slot taken during the run; no slot is used twice and no participant holds two; the
slots of each stratum are used in order, without gaps, up to the stratum's counter; the audit
chain verifies; and the audit trail holds the insert of every stored assessment and the
assignment of every used slot. On SQLite, the warnings of a busy write lock tried again
(`trials.core.db`) are counted from the workers' log.

Prints the figures as Markdown tables (for docs/reliability.md), or JSON with --json. Exits
with status 1 when any request failed or the reconciliation found a difference.
"""

import argparse
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRIAL = "MOOD-CBT-01"
SPONSOR = "load-sponsor"
# Pre-randomized participants are randomized this many days before the run: every visit of the
# example protocol (the last at day 84) is then in the past.
PAST_DAYS = 100
# Each client's cycle: randomize a participant and enter its baseline PHQ-9 and GAD-7, then one
# follow-up assessment of a participant randomized earlier.
PHQ9 = {str(i): 1 for i in range(1, 9)} | {"9": 0}  # no item-9 safety signal
GAD7 = {str(i): 1 for i in range(1, 8)}


@dataclass
class Plan:
    """One client's coordinator, token and work."""

    username: str
    site: str
    token: str
    to_randomize: list[str]
    followups: list[tuple[str, str, str]]  # (label, instrument, assessed_on)


@dataclass
class Call:
    op: str
    status: int
    seconds: float
    label: str
    record_id: str | None = None
    error: str | None = None


@dataclass
class ClientLog:
    calls: list[Call] = field(default_factory=list)
    ran_out: bool = False


# -- database ---------------------------------------------------------------------------------


def create_database(backend: str, pg_url: str, folder: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder}/load.sqlite"
    from sqlalchemy import create_engine, text

    admin = create_engine(_psycopg(pg_url), isolation_level="AUTOCOMMIT")
    name = f"trials_load_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", _psycopg(pg_url), count=1)


def drop_database(url: str, pg_url: str) -> None:
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin = create_engine(_psycopg(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _psycopg(url: str) -> str:
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


# -- seeding through the services -------------------------------------------------------------


def seed(url: str, secret_key: str, *, clients: int, waiting: int, randomized: int) -> list[Plan]:
    """The live trial, the accounts and each client's participants, written through the
    services as the CLI writes them (one transaction per step, acting as a named account)."""
    from flask import current_app

    from protocols import services as protocols
    from protocols.document import example_protocol_path
    from trials import create_app
    from trials.core.accounts import services as accounts
    from trials.core.accounts.models import (
        GrantCreate,
        Role,
        SiteCreate,
        TokenCreate,
        TrialCreate,
        UserCreate,
    )
    from trials.core.audit import services as audit
    from trials.core.db import db, utctoday
    from trials.participants import services as participants
    from trials.participants.models import ScreeningCreate
    from trials.randomization import services as randomization

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": secret_key})
    source = protocols.Source(example_protocol_path().read_bytes(), "yaml")
    document = source.parse().document
    sites = [s.code for s in document.sites]
    visit_days = [(v.day, v.instruments) for v in document.visits]
    sponsor_password = secrets.token_urlsafe(18)
    plans: list[Plan] = []

    def acting(username: str) -> Any:
        session = db.session
        principal = accounts.load_principal(accounts.get_user(username, session=session), session=session)
        audit.set_actor(session, accounts.actor_for(principal, "cli"))
        return session, principal

    with app.app_context():
        with db.transaction() as session:
            by = accounts.SYSTEM
            audit.set_actor(session, accounts.actor_for(by, "cli"))
            for s in document.sites:
                accounts.create_site(
                    SiteCreate(code=s.code, name=s.name, country=s.country), session=session, by=by
                )
            title = " ".join(document.trial.title.split())
            accounts.create_trial(TrialCreate(code=TRIAL, title=title), session=session, by=by)
            users = [(SPONSOR, "Load Sponsor", Role.SPONSOR, None, sponsor_password)]
            users += [
                (
                    f"load-coord-{n:03d}",
                    f"Load Coordinator {n}",
                    Role.COORDINATOR,
                    sites[n % len(sites)],
                    None,
                )
                for n in range(clients)
            ]
            for username, name, role, site, password in users:
                data = UserCreate(
                    username=username, printed_name=name, password=password or secrets.token_urlsafe(18)
                )
                accounts.create_user(data, session=session, by=by)
                grant = GrantCreate(role=role, trial_code=TRIAL, site_code=site)
                accounts.grant_role(username, grant, session=session, by=by)
        with db.transaction():
            session, sponsor = acting(SPONSOR)
            protocols.register(source, session=session, by=sponsor)
            protocols.lock(
                TRIAL,
                1,
                password=sponsor_password,
                session=session,
                by=sponsor,
                lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
            )
            # Every client's participants could, at worst, fall in one stratum.
            randomization.go_live(
                TRIAL, session=session, by=sponsor, slots_per_stratum=clients * (waiting + randomized)
            )
        today = utctoday()
        rng = random.Random(20261127)
        for n in range(clients):
            username = f"load-coord-{n:03d}"
            site = sites[n % len(sites)]
            with db.transaction():
                session, coordinator = acting(username)
                past = today - timedelta(days=PAST_DAYS)
                to_randomize, followups = [], []
                for i in range(randomized + waiting):
                    earlier = i < randomized
                    screened = past - timedelta(days=14) if earlier else today - timedelta(days=14)
                    screening = ScreeningCreate.model_validate(
                        {
                            "site_code": site,
                            "screened_on": screened,
                            "age_years": rng.randint(18, 65),
                            "screening_phq9": rng.randint(10, 19),
                            "inclusion_met": True,
                            "exclusion_present": False,
                        }
                    )
                    p = participants.screen(TRIAL, screening, session=session, by=coordinator, today=today)
                    participants.enrol(
                        TRIAL,
                        p.label,
                        screened + timedelta(days=4),
                        session=session,
                        by=coordinator,
                        today=today,
                    )
                    if earlier:
                        at = datetime.combine(past, dtime(9), tzinfo=UTC) + timedelta(seconds=n * 1000 + i)
                        randomization.randomize(TRIAL, p.label, session=session, by=coordinator, at=at)
                        followups += [
                            (p.label, instrument, (past + timedelta(days=day)).isoformat())
                            for day, instruments in visit_days
                            for instrument in instruments
                        ]
                    else:
                        to_randomize.append(p.label)
                _token, secret = accounts.create_token(
                    TokenCreate(name="load", scope="write"), session=session, by=coordinator
                )
            rng.shuffle(followups)
            plans.append(Plan(username, site, secret, to_randomize, followups))
        app.extensions["trials_db"].engine.dispose()
    return plans


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(
    url: str, secret_key: str, workers: int, log_path: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """gunicorn with `workers` sync workers, as `trials serve` runs it. Its error log (warnings
    included) goes to `log_path`.

    Sync rather than gthread: each request is a short write transaction that the database
    serializes (one writer at a time on SQLite, two cores for PostgreSQL), so threads in a
    worker would only queue on the same lock while contending for the GIL; sync workers also
    beat threaded ones on database writes when measured (ARCHITECTURE.md). The clients beyond
    the workers wait in the listen backlog: it shows as latency, never as a refused request."""
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    env = {**os.environ, "TRIALS_DATABASE_URL": url, "TRIALS_SECRET_KEY": secret_key}
    env.pop("REDIS_URL", None)
    argv = [
        str(gunicorn),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--backlog",
        "2048",
        "--timeout",
        "120",
        "--log-level",
        "warning",
        "trials:create_app()",
    ]
    log = log_path.open("wb")
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(log_path.parent))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/openapi.json")
            ok = conn.getresponse().status == 200
            conn.close()
            if ok:
                return server, port
        except OSError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# -- the clients -------------------------------------------------------------------------------


def client(plan: Plan, port: int, start: threading.Event, deadline: list[float], out: ClientLog) -> None:
    """Post randomizations and assessments until the deadline or until the plan's work ends."""
    headers = {"Authorization": f"Bearer {plan.token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    today = datetime.now(UTC).date().isoformat()
    baseline: list[tuple[str, str, str]] = []
    followups = list(plan.followups)
    to_randomize = list(plan.to_randomize)
    start.wait()
    step = 0
    while time.monotonic() < deadline[0]:
        if baseline:
            label, instrument, on = baseline.pop(0)
            op = "assessment (baseline)"
        elif step % 2 == 0 and to_randomize:
            label = to_randomize.pop(0)
            op = "randomize"
        elif followups:
            label, instrument, on = followups.pop()
            op = "assessment (follow-up)"
        elif to_randomize:
            label = to_randomize.pop(0)
            op = "randomize"
        else:
            out.ran_out = True
            return
        step += 1
        if op == "randomize":
            path, body = f"/api/v1/trials/{TRIAL}/participants/{label}/randomize", b""
        else:
            items = PHQ9 if instrument == "PHQ-9" else GAD7
            path = f"/api/v1/trials/{TRIAL}/participants/{label}/assessments"
            body = json.dumps({"instrument": instrument, "assessed_on": on, "items": items}).encode()
        began = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            out.calls.append(Call(op, 0, time.perf_counter() - began, label, error=repr(exc)))
            continue
        seconds = time.perf_counter() - began
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
        call = Call(op, status, seconds, label)
        if 200 <= status < 300:
            data = json.loads(payload)
            if op == "randomize":
                baseline += [(label, "PHQ-9", today), (label, "GAD-7", today)]
            else:
                call.record_id = data["id"]
        else:
            call.error = payload[:300].decode("utf-8", "replace")
        out.calls.append(call)
    conn.close()


def run_clients(plans: list[Plan], port: int, duration: float) -> tuple[list[ClientLog], float]:
    logs = [ClientLog() for _ in plans]
    start, deadline = threading.Event(), [0.0]
    threads = [
        threading.Thread(target=client, args=(plan, port, start, deadline, log), daemon=True)
        for plan, log in zip(plans, logs, strict=True)
    ]
    for t in threads:
        t.start()
    began = time.monotonic()
    deadline[0] = began + duration
    start.set()
    for t in threads:
        t.join()
    return logs, time.monotonic() - began


# -- reconciliation ----------------------------------------------------------------------------


def reconcile(url: str, logs: list[ClientLog], plans: list[Plan]) -> dict[str, Any]:
    """Compare the database with the answers the clients got; each check is True when it holds."""
    from sqlalchemy import select
    from sqlmodel import col

    from trials.assessments.models import Assessment
    from trials.core.audit import services as audit
    from trials.core.audit.models import AuditEntry
    from trials.core.db import make_engine
    from trials.participants.models import Participant
    from trials.randomization.models import AllocationSlot, StratumCounter

    calls = [c for log in logs for c in log.calls]
    told_ids = [c.record_id for c in calls if c.op.startswith("assessment") and c.status == 201]
    told_randomized = [c.label for c in calls if c.op == "randomize" and c.status == 200]
    waiting = {label for plan in plans for label in plan.to_randomize}
    engine = make_engine(url)
    with engine.connect() as conn:
        stored_ids = [str(r) for r in conn.execute(select(Assessment.id)).scalars()]
        labels = dict(conn.execute(select(Participant.id, Participant.label)).all())
        slots = conn.execute(
            select(
                AllocationSlot.id,
                AllocationSlot.stratum,
                AllocationSlot.position,
                AllocationSlot.participant_id,
                AllocationSlot.randomized_at,
            ).where(col(AllocationSlot.participant_id).is_not(None))
        ).all()
        counters = dict(conn.execute(select(StratumCounter.stratum, StratumCounter.last_position)).all())
        audited_inserts = Counter(
            conn.execute(
                select(AuditEntry.record_id)
                .where(AuditEntry.table_name == "assessment", AuditEntry.action == "insert")
                .distinct()
            ).scalars()
        )
        audited_slots = Counter(
            conn.execute(
                select(AuditEntry.record_id).where(
                    AuditEntry.table_name == "allocation_slot",
                    AuditEntry.action == "update",
                    AuditEntry.field == "participant_id",
                )
            ).scalars()
        )
        chain = audit.verify_chain(conn)
    engine.dispose()

    randomized_in_run = sorted(labels[s.participant_id] for s in slots if labels[s.participant_id] in waiting)
    by_stratum: dict[str, list[Any]] = {}
    for s in sorted(slots, key=lambda s: (s.stratum, s.position)):
        by_stratum.setdefault(s.stratum, []).append(s)
    in_order = all(
        [s.position for s in used] == list(range(1, len(used) + 1))
        and counters[stratum] == len(used)
        and all(a.randomized_at <= b.randomized_at for a, b in zip(used, used[1:], strict=False))
        for stratum, used in by_stratum.items()
    ) and all(n == len(by_stratum.get(stratum, [])) for stratum, n in counters.items())
    checks = {
        "assessments_answered_201_unique": len(told_ids) == len(set(told_ids)),
        "assessments_stored_equal_answered": sorted(stored_ids) == sorted(told_ids),
        "randomized_equal_answered_200": randomized_in_run == sorted(told_randomized),
        "no_slot_used_twice": len({s.id for s in slots}) == len(slots),
        "no_participant_with_two_slots": len({s.participant_id for s in slots}) == len(slots),
        "slots_used_in_order_per_stratum": in_order,
        "audit_chain_verifies": chain.ok,
        "audit_insert_of_every_assessment": set(audited_inserts) == set(stored_ids),
        "audit_assignment_of_every_slot": audited_slots == Counter(str(s.id) for s in slots),
    }
    return {
        "assessments_answered": len(told_ids),
        "assessments_stored": len(stored_ids),
        "randomizations_answered": len(told_randomized),
        "randomizations_stored": len(randomized_in_run),
        "slots_used": len(slots),
        "audit_entries_checked": chain.entries_checked,
        "audit_problem": chain.problem,
        "checks": checks,
        "ok": all(checks.values()),
    }


# -- figures -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`, which must not be empty."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def latency(calls: list[Call]) -> dict[str, float]:
    ms = [c.seconds * 1000 for c in calls]
    return {
        "requests": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
    }


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from trials.core import migrate
    from trials.core.db import SQLITE_BUSY_LOG

    folder = tempfile.mkdtemp(prefix="trials-load-")
    url = create_database(backend, args.pg_url, folder)
    secret_key = secrets.token_hex(32)
    try:
        t0 = time.perf_counter()
        migrate.upgrade(url)
        plans = seed(url, secret_key, clients=args.clients, waiting=args.waiting, randomized=args.randomized)
        seeding = time.perf_counter() - t0
        log_path = Path(folder) / "gunicorn.log"
        server, port = start_server(url, secret_key, args.workers, log_path)
        try:
            logs, elapsed = run_clients(plans, port, args.duration)
        finally:
            stop_server(server)
        server_log = log_path.read_text(encoding="utf-8", errors="replace")
        result = reconcile(url, logs, plans)
    finally:
        drop_database(url, args.pg_url)
    calls = [c for log in logs for c in log.calls]
    errors = Counter(c.status for c in calls if not 200 <= c.status < 300)
    by_op = {op: latency([c for c in calls if c.op == op]) for op in sorted({c.op for c in calls})}
    return {
        "backend": backend,
        "clients": args.clients,
        "workers": args.workers,
        "worker_class": "sync",
        "duration_s": args.duration,
        "elapsed_s": elapsed,
        "seeding_s": seeding,
        "requests": len(calls),
        "errors": sum(errors.values()),
        "errors_by_status": {str(k): v for k, v in sorted(errors.items())},
        "error_samples": sorted({c.error or "" for c in calls if c.error})[:5],
        "throughput_rps": len(calls) / elapsed,
        "all": latency(calls) if calls else {},
        "by_operation": by_op,
        "clients_out_of_work": sum(log.ran_out for log in logs),
        "sqlite_lock_retries": server_log.count(SQLITE_BUSY_LOG),
        "database_locked_in_log": server_log.count("database is locked") - server_log.count(SQLITE_BUSY_LOG),
        "server_tracebacks": server_log.count("Traceback"),
        "reconciliation": result,
    }


def markdown(r: dict[str, Any]) -> str:
    rec = r["reconciliation"]
    lines = [
        f"### {r['backend']}: {r['clients']} clients, {r['duration_s']:g} s, gunicorn {r['workers']} "
        f"{r['worker_class']} workers",
        "",
        f"{r['requests']:,} requests in {r['elapsed_s']:.1f} s: **{r['throughput_rps']:.1f} req/s**, "
        f"**{r['errors']} errors**"
        + (f" ({', '.join(f'{k}: {v}' for k, v in r['errors_by_status'].items())})" if r["errors"] else "")
        + (f"; {r['sqlite_lock_retries']} lock-contention retries" if r["backend"] == "sqlite" else "")
        + f"; {r['server_tracebacks']} tracebacks in the server log.",
        "",
        "| operation | requests | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, f in [*r["by_operation"].items(), ("all", r["all"])]:
        if f:
            lines.append(
                f"| {op} | {f['requests']:,} | {f['p50_ms']:.0f} | {f['p90_ms']:.0f} | {f['p99_ms']:.0f} "
                f"| {f['max_ms']:.0f} |"
            )
    lines += [
        "",
        f"Reconciled: {rec['assessments_stored']:,} assessments stored for {rec['assessments_answered']:,} "
        f"answered 201; {rec['randomizations_stored']:,} randomizations stored for "
        f"{rec['randomizations_answered']:,} answered 200 ({rec['slots_used']:,} slots used with the seeded "
        f"ones); audit chain of {rec['audit_entries_checked']:,} entries "
        f"{'verifies' if rec['checks']['audit_chain_verifies'] else 'BROKEN: ' + str(rec['audit_problem'])}.",
        "",
    ]
    lines += [f"- {'ok' if ok else 'FAILED'}: {name.replace('_', ' ')}" for name, ok in rec["checks"].items()]
    if r["clients_out_of_work"]:
        lines.append(f"- {r['clients_out_of_work']} clients ran out of participants before the end")
    if r["error_samples"]:
        lines += ["", "Errors (samples):", *[f"    {e}" for e in r["error_samples"]]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--waiting", type=int, default=40, help="enrolled participants per client to randomize"
    )
    parser.add_argument(
        "--randomized", type=int, default=5, help="participants per client randomized earlier"
    )
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    results = [run_backend(b, args) for b in backends]
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(
            f"python bench/load.py --backend {args.backend} --clients {args.clients} "
            f"--duration {args.duration:g} --workers {args.workers}\n"
        )
        for r in results:
            print(markdown(r))
            print(f"(seeding took {r['seeding_s']:.0f} s)\n")
    return 0 if all(r["errors"] == 0 and r["reconciliation"]["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
