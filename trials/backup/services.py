"""Backing up the whole database while the application serves, and restoring it, checked.

A backup is one consistent state of the database:

- SQLite: the online backup API copies the pages through a connection that holds one read
  transaction from the first page to the last. In WAL mode writers go on meanwhile; what was
  committed before the transaction began (in the WAL or the main file) is in the copy, what is
  committed after it is not.
- PostgreSQL: `pg_dump --format=custom` reads the snapshot exported by a REPEATABLE READ
  transaction that stays open until the dump ends.

The manifest beside the backup (`FILE.manifest.json`) is computed in that same transaction, so it
describes exactly what the file holds: the backend, the schema revision, the time, the file's
SHA-256, the audit chain's head, the rows of every table and each trial's data snapshot hash
(the clinical-content hash the analyses and reports carry). The file is written under a
temporary name and renamed into place only when complete.

A restore checks the file against its manifest before it touches the configured database, then
replaces the database's content in one step (the SQLite backup API into the database, which
commits only at the last page; `pg_restore --single-transaction`), then verifies the audit
chain and recomputes the manifest's figures on the restored database.
"""

import getpass
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, inspect, text
from sqlmodel import Session, select

from trials.analyses.services import plan_version
from trials.analyses.unblinding import unblinding_of
from trials.core import migrate
from trials.core.accounts.models import Trial
from trials.core.audit import services as audit
from trials.core.audit.services import Anchor, ChainReport
from trials.core.db import SNAPSHOT_OPTION
from trials.core.errors import Conflict, DomainError

MANIFEST_FORMAT = "trials-backup/1"
MANIFEST_SUFFIX = ".manifest.json"
BACKENDS = ("sqlite", "postgresql")
# Tables that hold rows in a database that was only migrated: it counts as empty.
BOOKKEEPING_TABLES = frozenset({"alembic_version", "audit_chain_head"})
# SQLite pages copied per step of the backup API (4 MiB at the default page size): small enough
# for a live progress bar, large enough not to slow the copy down.
SQLITE_PAGES_PER_STEP = 1024

Progress = Callable[[str, float], None]


def _no_progress(_step: str, _fraction: float) -> None:
    return None


class BackupFailed(DomainError):
    """A backup or restore tool failed; nothing was replaced."""

    status = 500
    title = "Backup or restore failed"


# -- the manifest ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialSnapshot:
    """A trial's data snapshot hash as of the backup. `arms_included` is false until the trial
    is unblinded (as in its blinded results: a hash over the arms would let guesses be tested);
    the hash is None, with a note, for a trial without a locked protocol."""

    code: str
    data_snapshot_sha256: str | None
    arms_included: bool
    note: str | None = None


@dataclass(frozen=True)
class DatabaseState:
    """What a backup's manifest records of the database, and what a restore recomputes."""

    schema_revision: str | None
    audit_chain_head: Anchor
    row_counts: dict[str, int]
    trials: tuple[TrialSnapshot, ...]


@dataclass(frozen=True)
class Manifest:
    """The record beside a backup file that lets a restore be checked."""

    backend: str
    file: str
    file_sha256: str
    file_bytes: int
    created_at: str
    state: DatabaseState
    software: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "backend": self.backend,
            "file": self.file,
            "file_sha256": self.file_sha256,
            "file_bytes": self.file_bytes,
            "created_at": self.created_at,
            "schema_revision": self.state.schema_revision,
            "audit_chain_head": {
                "seq": self.state.audit_chain_head.seq,
                "hash": self.state.audit_chain_head.hash,
            },
            "row_counts": dict(sorted(self.state.row_counts.items())),
            "trials": [asdict(t) for t in self.state.trials],
            "software": self.software,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        head = data["audit_chain_head"]
        state = DatabaseState(
            schema_revision=data["schema_revision"],
            audit_chain_head=Anchor(int(head["seq"]), str(head["hash"])),
            row_counts={str(k): int(v) for k, v in data["row_counts"].items()},
            trials=tuple(TrialSnapshot(**t) for t in data["trials"]),
        )
        return cls(
            backend=str(data["backend"]),
            file=str(data["file"]),
            file_sha256=str(data["file_sha256"]),
            file_bytes=int(data["file_bytes"]),
            created_at=str(data["created_at"]),
            state=state,
            software={str(k): str(v) for k, v in data.get("software", {}).items()},
        )


def manifest_path(backup: Path) -> Path:
    """Where the manifest of the backup file `backup` is kept: beside it."""
    return backup.with_name(backup.name + MANIFEST_SUFFIX)


def read_manifest(backup: Path) -> Manifest:
    path = manifest_path(backup)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Conflict(f"no manifest beside the backup: {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise Conflict(f"the manifest {path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise Conflict(f"{path} is not a manifest of this software's backups ({MANIFEST_FORMAT})")
    try:
        return Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise Conflict(f"the manifest {path} is incomplete: {exc!r}") from None


# -- the state a manifest records ----------------------------------------------------------------


def _quote(connection: Connection, name: str) -> str:
    return str(connection.dialect.identifier_preparer.quote(name))


def row_counts(connection: Connection) -> dict[str, int]:
    """The number of rows of every table of the database (the default schema on PostgreSQL)."""
    names = sorted(inspect(connection).get_table_names())
    return {
        name: int(connection.execute(text(f"SELECT count(*) FROM {_quote(connection, name)}")).scalar_one())
        for name in names
    }


def _schema_revision(connection: Connection, tables: Sequence[str]) -> str | None:
    if "alembic_version" not in tables:
        return None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    return None if revision is None else str(revision)


def trial_snapshots(connection: Connection) -> tuple[TrialSnapshot, ...]:
    """Each trial's data snapshot hash, computed as its analyses compute it."""
    from trials.analyses.datasets import load_raw  # pandas: loaded when a backup needs it

    out = []
    with Session(bind=connection) as session:
        for trial in session.exec(select(Trial).order_by(Trial.code)).all():
            unblinding = unblinding_of(trial.id, session=session)
            try:
                _version, document = plan_version(trial, unblinding, session=session)
            except Conflict:
                out.append(TrialSnapshot(trial.code, None, False, "no locked protocol"))
                continue
            arms = unblinding is not None
            raw = load_raw(trial.id, document, session=session)
            out.append(TrialSnapshot(trial.code, raw.snapshot_sha256(include_arms=arms), arms))
    return tuple(out)


def database_state(connection: Connection) -> DatabaseState:
    """The figures a manifest records, read on `connection` (inside its transaction)."""
    counts = row_counts(connection)
    has_audit = "audit_chain_head" in counts
    return DatabaseState(
        schema_revision=_schema_revision(connection, list(counts)),
        audit_chain_head=audit.chain_head(connection) if has_audit else Anchor(0, ""),
        row_counts=counts,
        trials=trial_snapshots(connection) if "trial" in counts else (),
    )


# -- files ---------------------------------------------------------------------------------------


def file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(beside: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{beside.name}.", suffix=suffix, dir=beside.parent)
    os.close(fd)
    return Path(name)


def os_user() -> str:
    """The operating-system account running the command (recorded beside the audit actor)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no password-database entry
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


# -- PostgreSQL client tools ---------------------------------------------------------------------


def find_tool(name: str) -> str:
    """The path of a PostgreSQL client tool: on PATH, else the newest Debian/Ubuntu install."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    raise BackupFailed(
        f"{name} is not installed: install the PostgreSQL client tools of the server's major "
        "version or newer (Debian and Ubuntu: apt-get install postgresql-client)"
    )


def libpq_target(engine: Engine) -> tuple[str, dict[str, str]]:
    """The database as a libpq URL without the driver suffix or the password, and the
    environment that carries the password (PGPASSWORD), so that no password is on a command
    line."""
    url = engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    target = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return target, env


def _run_tool(
    argv: list[str],
    env: dict[str, str],
    *,
    counts: re.Pattern[str],
    total: int,
    progress: Progress,
    span: tuple[float, float],
    step: str,
) -> None:
    """Run a pg_dump or pg_restore in verbose mode; each stderr line matching `counts` is one of
    `total` tables done (the progress bar). Raises BackupFailed with the tool's last words."""
    low, high = span
    done = 0
    tail: deque[str] = deque(maxlen=12)
    with subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            if counts.search(line):
                done += 1
                progress(step, low + (high - low) * min(done, total) / max(total, 1))
            else:
                tail.append(line.rstrip())
    if process.returncode != 0:
        said = "\n  ".join(line for line in tail if "error" in line.lower() or "fatal" in line.lower())
        raise BackupFailed(
            f"{Path(argv[0]).name} failed (exit status {process.returncode})"
            + (f":\n  {said}" if said else "")
        )


def tool_version(name: str) -> str:
    out = subprocess.run([find_tool(name), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


# -- backup --------------------------------------------------------------------------------------


def _sqlite_file(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise Conflict("only a SQLite database in a file can be backed up or restored")
    return Path(database).resolve()


def _refuse_own_files(engine: Engine, out: Path) -> None:
    if engine.dialect.name != "sqlite":
        return
    database = _sqlite_file(engine)
    own = {database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal"))}
    if out.resolve() in own:
        raise Conflict(f"{out} is the database itself: write the backup to another file")


def _backup_sqlite(engine: Engine, dest: Path, progress: Progress, pages: int) -> DatabaseState:
    with engine.connect() as connection:
        # A deferred transaction (Database.snapshot): a read transaction from its first read,
        # which in WAL mode holds up no writer.
        connection = connection.execution_options(**{SNAPSHOT_OPTION: True})
        transaction = connection.begin()
        try:
            connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
            source = cast(sqlite3.Connection, connection.connection.driver_connection)
            target = sqlite3.connect(dest, isolation_level=None)
            try:

                def copied(_status: int, remaining: int, total: int) -> None:
                    progress("copying pages", 0.7 * (total - remaining) / max(total, 1))

                # The source connection is in its read transaction: every step copies pages of
                # that one state, so the backup never restarts while writers commit.
                source.backup(target, pages=pages, progress=copied)
                # A file that stands alone (no -wal beside it) and can be opened read-only.
                target.execute("PRAGMA journal_mode=DELETE")
            finally:
                target.close()
            progress("computing the manifest", 0.7)
            return database_state(connection)
        finally:
            transaction.rollback()


def _backup_postgresql(engine: Engine, dest: Path, progress: Progress) -> DatabaseState:
    pg_dump = find_tool("pg_dump")
    target, env = libpq_target(engine)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        transaction = connection.begin()
        try:
            # pg_dump reads the snapshot of this transaction, which stays open until it ends,
            # so the dump and the manifest computed below describe one state of the database.
            snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            tables = len(inspect(connection).get_table_names())
            argv = [
                pg_dump,
                "--format=custom",
                f"--snapshot={snapshot}",
                "--no-password",
                "--verbose",
                f"--file={dest}",
                f"--dbname={target}",
            ]
            _run_tool(
                argv,
                env,
                counts=re.compile(r"dumping contents of table"),
                total=tables,
                progress=progress,
                span=(0.0, 0.7),
                step="dumping tables",
            )
            progress("computing the manifest", 0.7)
            return database_state(connection)
        finally:
            transaction.rollback()


def backup_database(
    engine: Engine,
    out: Path,
    *,
    progress: Progress = _no_progress,
    pages: int = SQLITE_PAGES_PER_STEP,
) -> Manifest:
    """Write a consistent backup of the database to `out` and its manifest beside it.

    Both are written under temporary names in `out`'s folder and renamed into place once
    complete (an existing backup of that name is replaced only then). Writers are not held up.
    """
    backend = engine.dialect.name
    if backend not in BACKENDS:
        raise Conflict(f"backups of a {backend} database are not supported")
    _refuse_own_files(engine, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = _temporary(out, ".partial")
    partial_manifest = _temporary(out, ".manifest.partial")
    try:
        if backend == "sqlite":
            state = _backup_sqlite(engine, partial, progress, pages)
            software = {"sqlite": sqlite3.sqlite_version}
        else:
            state = _backup_postgresql(engine, partial, progress)
            software = {"pg_dump": tool_version("pg_dump")}
        progress("hashing the file", 0.95)
        _fsync(partial)
        sha256, size = file_sha256(partial)
        manifest = Manifest(
            backend=backend,
            file=out.name,
            file_sha256=sha256,
            file_bytes=size,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            state=state,
            software={"trials": metadata.version("trials"), **software},
        )
        partial_manifest.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
        _fsync(partial_manifest)
        partial.replace(out)
        partial_manifest.replace(manifest_path(out))
        progress("done", 1.0)
        return manifest
    finally:
        partial.unlink(missing_ok=True)
        partial_manifest.unlink(missing_ok=True)


def record_backup(session: Session, manifest: Manifest, out: Path) -> None:
    """Put the backup on the audit trail: the file, its hash and the chain head it holds."""
    head = manifest.state.audit_chain_head
    audit.record_event(
        session,
        "database_backed_up",
        detail=(
            f"{manifest.backend} backup {out.resolve()} sha256 {manifest.file_sha256} "
            f"({manifest.file_bytes} bytes); schema {manifest.state.schema_revision}; "
            f"audit chain head {head.seq}:{head.hash}; operating-system user {os_user()}"
        ),
    )


# -- restore -------------------------------------------------------------------------------------


def check_backup(backup: Path, *, backend: str) -> Manifest:
    """The backup's manifest, once the file matches it and can be restored here; Conflict
    (nothing touched) otherwise."""
    if not backup.is_file():
        raise Conflict(f"no backup file at {backup}")
    manifest = read_manifest(backup)
    sha256, size = file_sha256(backup)
    if sha256 != manifest.file_sha256 or size != manifest.file_bytes:
        raise Conflict(
            f"the backup file does not match its manifest: SHA-256 {sha256} ({size} bytes), the "
            f"manifest records {manifest.file_sha256} ({manifest.file_bytes} bytes). The file was "
            "changed or damaged after the backup: nothing was restored"
        )
    if manifest.backend != backend:
        raise Conflict(
            f"this is a backup of a {manifest.backend} database and the configured database is "
            f"{backend}: a backup restores only into the backend it was taken from (set "
            f"TRIALS_DATABASE_URL to a {manifest.backend} database)"
        )
    revision = manifest.state.schema_revision
    if revision is not None and revision not in migrate.known_revisions():
        raise Conflict(
            f"the backup's schema is at revision {revision}, which this version of the software "
            f"does not know (its migrations end at {migrate.head_revision()}): restore it with "
            "the version that took it, or a newer one"
        )
    return manifest


def _counts_now(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection = connection.execution_options(**{SNAPSHOT_OPTION: True})
        transaction = connection.begin()
        try:
            return row_counts(connection)
        finally:
            transaction.rollback()


@dataclass(frozen=True)
class RestoreCheck:
    """The restored database against the manifest. `problems` is empty when everything holds."""

    chain: ChainReport
    audit_chain_head: Anchor
    schema_revision: str | None
    row_counts: dict[str, int]
    trials: tuple[TrialSnapshot, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_restored(engine: Engine, manifest: Manifest) -> RestoreCheck:
    """Verify the audit chain of the database (as `trials audit verify` does, and against the
    manifest's head as an anchor) and recompute what the manifest records."""
    expected = manifest.state
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection = connection.execution_options(**{SNAPSHOT_OPTION: True})
        else:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        transaction = connection.begin()
        try:
            anchors = [expected.audit_chain_head] if expected.audit_chain_head.seq else []
            chain = audit.verify_chain(connection, anchors=anchors)
            state = database_state(connection)
        finally:
            transaction.rollback()
    problems: list[str] = []
    if not chain.ok:
        problems.append(f"audit trail broken at entry #{chain.broken_seq}: {chain.problem}")
    head = state.audit_chain_head
    if head != expected.audit_chain_head:
        problems.append(
            f"audit chain head {head.seq}:{head.hash}, the manifest records "
            f"{expected.audit_chain_head.seq}:{expected.audit_chain_head.hash}"
        )
    if state.schema_revision != expected.schema_revision:
        problems.append(
            f"schema revision {state.schema_revision}, the manifest records {expected.schema_revision}"
        )
    for table in sorted(set(state.row_counts) | set(expected.row_counts)):
        found, wanted = state.row_counts.get(table), expected.row_counts.get(table)
        if found != wanted:
            problems.append(f"table {table}: {found} rows, the manifest records {wanted}")
    found_trials = {t.code: t for t in state.trials}
    for trial in expected.trials:
        now = found_trials.get(trial.code)
        if now is None:
            problems.append(f"trial {trial.code} is missing")
        elif now.data_snapshot_sha256 != trial.data_snapshot_sha256:
            problems.append(
                f"trial {trial.code}: data snapshot {now.data_snapshot_sha256}, the manifest records "
                f"{trial.data_snapshot_sha256}"
            )
    return RestoreCheck(chain, head, state.schema_revision, state.row_counts, state.trials, tuple(problems))


def _restore_sqlite(engine: Engine, backup: Path, progress: Progress, pages: int) -> None:
    source = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
    try:
        connection = engine.raw_connection()
        try:
            target = cast(sqlite3.Connection, connection.driver_connection)

            def copied(_status: int, remaining: int, total: int) -> None:
                progress("copying pages", 0.7 * (total - remaining) / max(total, 1))

            # The copy is one write transaction on the database, committed at the last page:
            # other connections see the old content or the new, never a mix; a failure leaves
            # the old content in place.
            source.backup(target, pages=pages, progress=copied)
        except sqlite3.Error as exc:
            raise BackupFailed(f"the SQLite restore failed, nothing was replaced: {exc}") from None
        finally:
            connection.close()
    finally:
        source.close()
    engine.dispose()


def _restore_postgresql(engine: Engine, backup: Path, manifest: Manifest, progress: Progress) -> None:
    pg_restore = find_tool("pg_restore")
    target, env = libpq_target(engine)
    engine.dispose()  # this process's idle connections: nothing of ours holds a lock meanwhile
    argv = [
        pg_restore,
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        "--verbose",
        f"--dbname={target}",
        str(backup),
    ]
    _run_tool(
        argv,
        env,
        counts=re.compile(r"processing data for table"),
        total=len(manifest.state.row_counts),
        progress=progress,
        span=(0.0, 0.7),
        step="restoring tables",
    )


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    replaced: tuple[str, ...]  # the tables that held data before the restore (with --force)
    check: RestoreCheck


def restore_database(
    engine: Engine,
    backup: Path,
    *,
    force: bool = False,
    progress: Progress = _no_progress,
    pages: int = SQLITE_PAGES_PER_STEP,
) -> RestoreReport:
    """Replace the database's content with the backup's, then check it against the manifest.

    Refused, with nothing changed (Conflict): a file that does not match its manifest, a
    backup of the other backend or of a schema newer than the code, and a database that holds
    data unless `force`.
    """
    backend = engine.dialect.name
    if backend not in BACKENDS:
        raise Conflict(f"restoring into a {backend} database is not supported")
    progress("checking the backup file", 0.0)
    manifest = check_backup(backup, backend=backend)
    if backend == "sqlite":
        _sqlite_file(engine).parent.mkdir(parents=True, exist_ok=True)
    counts = _counts_now(engine)
    occupied = tuple(t for t, n in counts.items() if n and t not in BOOKKEEPING_TABLES)
    if occupied and not force:
        listed = ", ".join(f"{t} ({counts[t]})" for t in occupied[:6])
        more = f" and {len(occupied) - 6} more tables" if len(occupied) > 6 else ""
        raise Conflict(
            f"the configured database is not empty (rows in {listed}{more}): restore into an "
            "empty database, or pass --force to replace its whole content with the backup's"
        )
    if backend == "postgresql":
        foreign = sorted(set(counts) - set(manifest.state.row_counts))
        if foreign:
            raise Conflict(
                "the configured database has tables the backup does not (" + ", ".join(foreign[:6]) + "): "
                "a restore would leave them beside the backup's; restore into an empty database"
            )
        _restore_postgresql(engine, backup, manifest, progress)
    else:
        _restore_sqlite(engine, backup, progress, pages)
    progress("verifying the restored database", 0.7)
    check = verify_restored(engine, manifest)
    progress("done", 1.0)
    return RestoreReport(manifest, occupied, check)


def record_restore(session: Session, report: RestoreReport, backup: Path) -> None:
    """Put the restore on the restored database's audit trail, after the entries it restored."""
    manifest = report.manifest
    head = manifest.state.audit_chain_head
    replaced = (
        f"; replaced the content of a database with rows in {len(report.replaced)} tables"
        if report.replaced
        else ""
    )
    audit.record_event(
        session,
        "database_restored",
        detail=(
            f"restored from {manifest.backend} backup {backup.resolve()} sha256 {manifest.file_sha256} "
            f"taken {manifest.created_at}; audit chain head {head.seq}:{head.hash}{replaced}; "
            f"operating-system user {os_user()}"
        ),
    )
