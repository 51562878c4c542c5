"""CSV import figures: importing one PHQ-9 per participant of a large trial, beside a raw
executemany of the same assessment rows.

Set-up (not timed): the example protocol registered and locked, its sites, a coordinator of
every site and a clinician per site, and N enrolled and randomized participants inserted in
bulk. Then, each on the same empty assessment table:

  (a) raw: the DBAPI cursor's executemany of the finished assessment rows (ids, visit codes,
      the batch they refer to: the rows the import stores) in the file's order, and the commit.
      The values are converted to the driver's parameters inside the timing, as psycopg does
      inside executemany; the figure without that conversion is shown too. For reference, the
      same rows in the order the import writes them (by participant), and COPY on
      PostgreSQL. After each, the rows are deleted and the table compacted (VACUUM), untimed;
  (b) import: `trials.imports.services.import_csv` on the CSV file's bytes, committed: parse,
      validation of every row, visit assignment, duplicate checks, safety events with their
      notifications, data queries, the import batch and the audit entries.

Run: .venv/bin/python bench/csv_import.py [DATABASE_URL] [participants]
(default: a temporary SQLite file and 100,000 participants; a PostgreSQL URL must name an
empty database, which is migrated)
"""

import csv
import hashlib
import io
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlmodel import Session

from protocols import services as protocols
from protocols.document import example_protocol_path
from trials.assessments.models import ITEM_COLUMNS, Assessment
from trials.assessments.services import assign_visit
from trials.core import migrate
from trials.core.accounts import services as accounts
from trials.core.accounts.models import GrantCreate, Role, SiteCreate, UserCreate
from trials.core.audit import services as audit
from trials.core.db import make_engine, new_id, utcnow
from trials.imports import services as imports
from trials.imports.models import ImportBatch
from trials.participants.models import Participant
from trials.randomization.models import AllocationList, AllocationSlot
from trials.safety.models import Notification, SafetyEvent

PASSWORD = "benchmark password 1"
TODAY = datetime.now(UTC).date()


def set_up(engine: Any, n: int, seed: int) -> tuple[str, list[dict[str, Any]], uuid.UUID]:
    """The locked example trial with `n` randomized participants; returns the trial's code, the
    participants (label, id, randomization and consent dates), and the id of an import batch
    the raw rows refer to, as imported rows refer to theirs."""
    rng = random.Random(seed)
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system())
        source = protocols.Source(example_protocol_path().read_bytes(), "yaml")
        document = source.parse().document
        sites = {}
        for site in document.sites:
            sites[site.code] = accounts.create_site(
                SiteCreate(code=site.code, name=site.name, country=site.country),
                session=session,
                by=accounts.SYSTEM,
            )
        version = protocols.register(source, session=session, by=accounts.SYSTEM)
        code = document.trial.code
        for username, grants in (
            ("sponsor", [(Role.SPONSOR, None)]),
            ("coordinator", [(Role.COORDINATOR, s) for s in sites]),
            *((f"clinician{s.lower()}", [(Role.CLINICIAN, s)]) for s in sites),
        ):
            accounts.create_user(
                UserCreate(username=username, printed_name=username.title(), password=PASSWORD),
                session=session,
                by=accounts.SYSTEM,
            )
            for role, site_code in grants:
                accounts.grant_role(
                    username,
                    GrantCreate(role=role, trial_code=code, site_code=site_code),
                    session=session,
                    by=accounts.SYSTEM,
                )
        sponsor = accounts.load_principal(accounts.get_user("sponsor", session=session), session=session)
        protocols.lock(code, 1, password=PASSWORD, session=session, by=sponsor, lockout_threshold=6)
        trial_id = version.trial_id
        allocation = AllocationList(
            trial_id=trial_id,
            protocol_version_id=version.id,
            seed_sha256="0" * 64,
            list_sha256="0" * 64,
            design="{}",
            slots_per_stratum=n,
            created_by="benchmark",
        )
        session.add(allocation)
        session.flush()
        now = utcnow()
        people, participant_rows, slot_rows = [], [], []
        codes = list(sites)
        for i in range(n):
            site = codes[i % len(codes)]
            randomized = now - timedelta(days=rng.randint(20, 200))
            consent = randomized.date() - timedelta(days=rng.randint(15, 20))
            pid = new_id()
            label = f"{site}-{i // len(codes) + 1:05d}"
            participant_rows.append(
                {
                    "id": pid,
                    "trial_id": trial_id,
                    "site_id": sites[site].id,
                    "label": label,
                    "status": "enrolled",
                    "screened_on": consent,
                    "age_years": rng.randint(18, 75),
                    "screening_phq9": rng.randint(10, 24),
                    "eligible": True,
                    "screen_failure_reasons": None,
                    "consent_date": consent,
                    "created_at": now,
                }
            )
            slot_rows.append(
                {
                    "id": new_id(),
                    "list_id": allocation.id,
                    "trial_id": trial_id,
                    "stratum": f"site={site}",
                    "position": i // len(codes) + 1,
                    "block": 1,
                    "block_size": 6,
                    "arm_code": rng.choice(["CBT", "ATTN", "WAIT"]),
                    "participant_id": pid,
                    "randomized_at": randomized,
                    "randomized_by": "coordinator",
                }
            )
            people.append({"label": label, "id": pid, "randomized_on": randomized.date(), "consent": consent})
        for model, rows in ((Participant, participant_rows), (AllocationSlot, slot_rows)):
            audit.bulk_insert_summarized(
                session,
                model,
                rows,
                batch_table="trial",
                batch_id=trial_id,
                reason=f"benchmark set-up: {n} randomized participants",
            )
        baseline = ImportBatch(
            trial_id=trial_id,
            kind="assessments",
            filename="raw-baseline.csv",
            sha256=hashlib.sha256(b"raw baseline").hexdigest(),
            row_count=n,
            rows_sha256="0" * 64,
            site_codes=",".join(codes),
            imported_by="benchmark",
            content=b"raw baseline",
        )
        session.add(baseline)
        session.commit()
        baseline_id = baseline.id
    return code, people, baseline_id


def phq9_items(rng: random.Random) -> list[int | None]:
    """Plausible PHQ-9 answers of a depressed population: items 1-8 around a severity, item 9
    mostly 0 (about 9% positive), item 10 the difficulty; about 1 item in 200 left empty."""
    severity = min(max(rng.gauss(1.6, 0.5), 0.0), 3.0)
    items: list[int | None] = [min(3, max(0, round(rng.gauss(severity, 0.8)))) for _ in range(8)]
    items.append(rng.choices([0, 1, 2, 3], weights=[91, 6, 2, 1])[0])
    items.append(min(3, max(0, round(severity))))
    return [None if rng.random() < 0.005 else v for v in items]


def build_file(
    people: list[dict[str, Any]], seed: int, batch_id: uuid.UUID
) -> tuple[bytes, list[dict[str, Any]]]:
    """The CSV (one PHQ-9 per participant: baseline mostly, some week 2, a few out of window)
    and the assessment rows it stores, as (column, value) tuples for the raw insert."""
    rng = random.Random(seed + 1)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["participant", "instrument", "assessed_on", *ITEM_COLUMNS])
    source = protocols.Source(example_protocol_path().read_bytes(), "yaml")
    visits = list(source.parse().document.visits)
    rows = []
    now = utcnow()
    # The import gives a batch's rows ids in ascending order; so do the raw rows.
    ids = sorted(uuid.uuid4() for _ in people)
    for person, row_id in zip(people, ids, strict=True):
        roll = rng.random()
        offset = (
            rng.randint(-10, 0) if roll < 0.8 else rng.randint(11, 17) if roll < 0.98 else rng.randint(6, 9)
        )
        assessed_on: date = person["randomized_on"] + timedelta(days=offset)
        items = phq9_items(rng)
        writer.writerow(
            [person["label"], "PHQ-9", assessed_on.isoformat(), *("" if v is None else v for v in items)]
        )
        visit = assign_visit(offset, visits)
        rows.append(
            {
                "id": row_id,
                "trial_id": None,
                "participant_id": person["id"],
                "instrument": "PHQ-9",
                "assessed_on": assessed_on,
                "visit_code": visit.visit_code,
                "in_window": visit.in_window,
                **dict(zip(ITEM_COLUMNS, items, strict=True)),
                "source": "site",
                "entered_by": "coordinator",
                "created_at": now,
                "import_batch_id": batch_id,
            }
        )
    return buffer.getvalue().encode("utf-8"), rows


def raw_insert(engine: Any, rows: list[dict[str, Any]], trial_id: Any) -> tuple[float, float]:
    """Seconds for the DBAPI cursor's executemany of the finished rows and the commit, with and
    without making the driver's parameters from the rows' values. psycopg converts UUIDs, dates
    and times inside executemany; sqlite3 needs them converted first (what an adapter would do),
    which the first figure counts on both databases alike. The rows are deleted afterwards,
    untimed."""
    columns = [c.name for c in Assessment.__table__.columns]  # type: ignore[attr-defined]
    sqlite = engine.dialect.name == "sqlite"
    items = [f"item_{n}" for n in range(1, 11)]
    expected = ["id", "trial_id", "participant_id", "instrument", "assessed_on", "visit_code", "in_window"]
    expected += [*items, "source", "entered_by", "created_at", "import_batch_id"]
    assert columns == expected, columns

    def parameters() -> list[tuple[Any, ...]]:
        if not sqlite:  # psycopg adapts UUIDs, dates and times itself
            return [(r["id"], trial_id, *(r[c] for c in columns[2:])) for r in rows]
        trial = trial_id.hex
        created = rows[0]["created_at"].replace(tzinfo=None).isoformat(sep=" ")
        return [
            (
                r["id"].hex,
                trial,
                r["participant_id"].hex,
                r["instrument"],
                r["assessed_on"].isoformat(),
                r["visit_code"],
                int(r["in_window"]),
                *(r[c] for c in items),
                r["source"],
                r["entered_by"],
                created,
                r["import_batch_id"].hex,
            )
            for r in rows
        ]

    marker = "?" if sqlite else "%s"
    sql = f"INSERT INTO assessment ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        conn.exec_driver_sql("SELECT 1")  # begins the transaction
        start = time.perf_counter()
        tuples = parameters()
        converted = time.perf_counter()
        cursor.executemany(sql, tuples)
        conn.commit()
        end = time.perf_counter()
        # Leave the table empty and compacted for the import (the raw rows were written around
        # the audit trail, as a baseline only).
        conn.exec_driver_sql("SELECT 1")
        cursor.execute("DELETE FROM assessment")
        conn.commit()
    compact(engine)
    return end - start, end - converted


def compact(engine: Any) -> None:
    """Reclaim the deleted rows' pages, so that the next insert finds the table as new."""
    with engine.connect() as conn:  # no transaction begun: VACUUM runs outside one
        dbapi = conn.connection.dbapi_connection
        if engine.dialect.name == "sqlite":
            dbapi.execute("VACUUM")
        else:
            dbapi.autocommit = True
            dbapi.execute("VACUUM assessment")
            dbapi.autocommit = False


def raw_copy(engine: Any, rows: list[dict[str, Any]], trial_id: Any) -> float:
    """PostgreSQL only, for reference: seconds for COPY of the finished rows and the commit."""
    columns = [c.name for c in Assessment.__table__.columns]  # type: ignore[attr-defined]
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        conn.exec_driver_sql("SELECT 1")
        start = time.perf_counter()
        with cursor.copy(f"COPY assessment ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([trial_id if c == "trial_id" else row[c] for c in columns])
        conn.commit()
        seconds = time.perf_counter() - start
        conn.exec_driver_sql("SELECT 1")
        cursor.execute("DELETE FROM assessment")
        conn.commit()
    compact(engine)
    return seconds


def main(url: str, n: int) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    print(f"{engine.dialect.name}: setting up {n:,} randomized participants (not timed) ...", flush=True)
    code, people, baseline_batch = set_up(engine, n, seed=20261126)
    content, rows = build_file(people, seed=20261126, batch_id=baseline_batch)
    with engine.connect() as conn:
        trial_id = conn.execute(text("SELECT id FROM trial")).scalar_one()
    trial_uuid = uuid.UUID(str(trial_id)) if not isinstance(trial_id, uuid.UUID) else trial_id
    raw, prepared = raw_insert(engine, rows, trial_uuid)
    # The import writes a batch's rows by participant, ids ascending in that order: the same
    # rows in that order, for reference.
    ids = [row["id"] for row in rows]
    in_order = [
        dict(row, id=row_id)
        for row, row_id in zip(sorted(rows, key=lambda r: r["participant_id"].hex), ids, strict=True)
    ]
    raw_ordered, _prepared = raw_insert(engine, in_order, trial_uuid)
    copy = raw_copy(engine, in_order, trial_uuid) if engine.dialect.name == "postgresql" else None
    phases: dict[str, float] = {}
    started = time.perf_counter()

    def progress(phase: str, done: int, total: int) -> None:
        phases.setdefault(phase, time.perf_counter() - started)

    with Session(engine) as session:
        user = accounts.get_user("coordinator", session=session)
        principal = accounts.load_principal(user, session=session)
        audit.set_actor(session, accounts.actor_for(principal, "cli"))
        start = time.perf_counter()
        started = start
        summary = imports.import_csv(
            code,
            "assessments",
            content,
            filename="bench.csv",
            session=session,
            by=principal,
            today=TODAY,
            progress=progress,
        )
        session.commit()
        full = time.perf_counter() - start
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(Assessment.__table__)).scalar_one()  # type: ignore[attr-defined]
        events = conn.execute(select(func.count()).select_from(SafetyEvent.__table__)).scalar_one()  # type: ignore[attr-defined]
        notes = conn.execute(select(func.count()).select_from(Notification.__table__)).scalar_one()  # type: ignore[attr-defined]
        report = audit.verify_chain(conn)
    engine.dispose()
    print(f"  file: {len(content) / 1e6:.1f} MB, {n:,} rows; stored {stored:,} assessments")
    print(
        f"  raised {summary.safety_events:,} safety events ({events:,} stored), {notes:,} notifications, "
        f"{summary.data_queries:,} data queries"
    )
    print(f"  (a) raw DBAPI executemany:   {raw:6.2f} s  {n / raw:>9,.0f} rows/s  (file order)")
    print(f"      parameters made ahead:   {prepared:6.2f} s  {n / prepared:>9,.0f} rows/s")
    print(
        f"      by participant:          {raw_ordered:6.2f} s  {n / raw_ordered:>9,.0f} rows/s  (as imported)"
    )
    if copy is not None:
        print(f"      COPY by participant:     {copy:6.2f} s  {n / copy:>9,.0f} rows/s")
    print(f"  (b) import, all included:    {full:6.2f} s  {n / full:>9,.0f} rows/s")
    print(
        "      phases: validation from {:.2f} s, writing from {:.2f} s".format(
            phases.get("validating", 0.0), phases.get("writing", 0.0)
        )
    )
    print(
        f"  ratio of rates, import / raw executemany: {raw / full:.2f} "
        f"({prepared / full:.2f} with parameters made ahead; {raw_ordered / full:.2f} by participant)"
    )
    if copy is not None:
        print(f"  ratio of rates, import / COPY by participant: {copy / full:.2f}")
    print(f"  audit chain: {report.entries_checked:,} entries, ok={report.ok}")


if __name__ == "__main__":
    target = (
        sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite"
    )
    main(target, int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
