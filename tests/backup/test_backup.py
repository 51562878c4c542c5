"""`trials backup` and `trials restore` on both databases: a restored database verifies its audit
chain and keeps every trial's data snapshot hash and every table's rows; what does not match its
manifest, or would overwrite data without --force, is refused and changes nothing; a backup taken
while another connection writes is one consistent state."""

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from tests.conftest import (
    create_database,
    create_user_with_grants,
    drop_database,
    run_cli,
    set_up_example_trial,
    site_and_user_makers,
)
from trials.backup import services
from trials.core import migrate
from trials.core.audit import services as audit
from trials.core.db import make_engine

CODE = "MOOD-CBT-01"
PASSWORD = "a backup password 1"


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return services.row_counts(connection)
    finally:
        engine.dispose()


def _head(url: str) -> tuple[int, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            anchor = audit.chain_head(connection)
            return anchor.seq, anchor.hash
    finally:
        engine.dispose()


def _snapshot(url: str, *, include_arms: bool) -> str:
    """The trial's data snapshot hash as the analyses compute it, read on its own."""
    from trials.analyses.datasets import load_raw
    from trials.participants.services import locked_protocol, trial_by_code

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            trial = trial_by_code(CODE, session=session)
            _version, document = locked_protocol(trial, session=session)
            return load_raw(trial.id, document, session=session).snapshot_sha256(include_arms=include_arms)
    finally:
        engine.dispose()


def _last_event(url: str) -> tuple[str, str, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT action, username, new_value FROM audit_entry ORDER BY seq DESC LIMIT 1")
            ).one()
            return row[0], row[1], row[2]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def source(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with the example trial live and 12 participants simulated through the
    services (screening, randomization, assessments, adverse events, dispositions), an admin
    and the trial's sponsor, all committed."""
    url = create_database(backend, tmp_path_factory.mktemp("source"))
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system())

        make_site, make_user = site_and_user_makers(session)

        set_up_example_trial(session, make_site, make_user, {"sponsor": "sam:sponsor:TRIAL"})
        create_user_with_grants(session, "ada", "admin")
        session.commit()
    engine.dispose()
    simulated = run_cli(url, "simulate", CODE, "--participants", "12", "--seed", "5")
    assert simulated.exit_code == 0, simulated.output
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def backup(source: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`trials backup` of the source as its admin: the path, the manifest, and the source's
    chain head and row counts just before."""
    before_head, before_counts = _head(source), _counts(source)
    out = tmp_path_factory.mktemp("backup") / "trials.backup"
    result = run_cli(source, "backup", "--out", str(out), "--as", "ada", "--json")
    assert result.exit_code == 0, result.output
    return {
        "path": out,
        "output": json.loads(result.stdout),
        "manifest": json.loads(services.manifest_path(out).read_text()),
        "head": before_head,
        "counts": before_counts,
    }


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A new database, not even migrated (a new server after a disaster)."""
    url = create_database(backend, tmp_path)
    yield url
    drop_database(url)


def test_the_backup_and_its_manifest_describe_the_database(
    backend: str, source: str, backup: dict[str, Any]
) -> None:
    manifest = backup["manifest"]
    path: Path = backup["path"]
    assert manifest == {k: v for k, v in backup["output"].items() if k not in ("path", "manifest")}
    assert manifest["backend"] == backend
    assert manifest["file"] == path.name
    assert (manifest["file_sha256"], manifest["file_bytes"]) == services.file_sha256(path)
    assert manifest["schema_revision"] == migrate.head_revision()
    assert (manifest["audit_chain_head"]["seq"], manifest["audit_chain_head"]["hash"]) == backup["head"]
    assert manifest["row_counts"] == backup["counts"]
    assert manifest["row_counts"]["assessment"] > 100
    assert manifest["row_counts"]["allocation_slot"] > 0
    assert manifest["created_at"].endswith("+00:00")
    # The hash the trial's (blinded) analyses carry: the arms stay out until the unblinding.
    assert manifest["trials"] == [
        {
            "code": CODE,
            "data_snapshot_sha256": _snapshot(source, include_arms=False),
            "arms_included": False,
            "note": None,
        }
    ]
    assert not list(path.parent.glob(".*partial"))
    # The backup is on the source's audit trail, as the admin who took it, after what it holds.
    action, username, detail = _last_event(source)
    assert (action, username) == ("database_backed_up", "ada")
    assert manifest["file_sha256"] in detail
    assert f"{backup['head'][0]}:{backup['head'][1]}" in detail
    assert _head(source)[0] == backup["head"][0] + 1
    assert run_cli(source, "audit", "verify").exit_code == 0


def test_only_an_admin_backs_up(source: str, tmp_path: Path) -> None:
    out = tmp_path / "by-sponsor.backup"
    refused = run_cli(source, "backup", "--out", str(out), "--as", "sam")
    assert refused.exit_code == 1
    assert "only an admin" in refused.output
    assert not out.exists()
    unknown = run_cli(source, "backup", "--out", str(out), "--as", "nobody")
    assert unknown.exit_code == 1
    assert not list(tmp_path.iterdir())


def test_a_restore_into_a_new_database_verifies_and_keeps_the_data(
    source: str, backup: dict[str, Any], empty_database_url: str
) -> None:
    target = empty_database_url
    manifest = backup["manifest"]
    result = run_cli(target, "restore", "--from", str(backup["path"]), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["audit_chain"]["ok"] is True
    assert report["audit_chain"]["entries_checked"] == manifest["audit_chain_head"]["seq"]
    assert report["audit_chain_head"] == manifest["audit_chain_head"]
    assert report["row_counts"] == manifest["row_counts"]
    assert report["trials"] == manifest["trials"]
    assert report["recorded_in_audit_trail"] is True

    # Checked again from outside: the chain verifies up to and through the manifest's head...
    head = manifest["audit_chain_head"]
    verified = run_cli(target, "audit", "verify", "--anchor", f"{head['seq']}:{head['hash']}")
    assert verified.exit_code == 0, verified.output
    # ...followed by the restore's own entry.
    action, username, detail = _last_event(target)
    assert (action, username) == ("database_restored", "system")
    assert manifest["file_sha256"] in detail
    # The clinical content is unchanged, with and without the arms.
    for arms in (False, True):
        assert _snapshot(target, include_arms=arms) == _snapshot(source, include_arms=arms)
    assert _snapshot(target, include_arms=False) == manifest["trials"][0]["data_snapshot_sha256"]
    # Every table holds the rows it held at the backup (the audit trail: one more, the restore).
    counts = _counts(target)
    assert {**counts, "audit_entry": counts["audit_entry"] - 1} == manifest["row_counts"]
    assert counts == {**backup["counts"], "audit_entry": backup["counts"]["audit_entry"] + 1}


def _copy(backup: dict[str, Any], folder: Path) -> Path:
    path = folder / backup["path"].name
    shutil.copyfile(backup["path"], path)
    shutil.copyfile(services.manifest_path(backup["path"]), services.manifest_path(path))
    return path


def test_a_tampered_backup_is_refused_and_nothing_changes(
    backup: dict[str, Any], fresh_database_url: str, tmp_path: Path
) -> None:
    target = fresh_database_url
    before = (_counts(target), _head(target))
    tampered = _copy(backup, tmp_path)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    result = run_cli(target, "restore", "--from", str(tampered), "--force")
    assert result.exit_code == 1
    assert "does not match its manifest" in result.output
    assert "Traceback" not in result.output
    assert (_counts(target), _head(target)) == before


OTHER_BACKEND = {"sqlite": "postgresql", "postgresql": "sqlite"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("backend", None, "restores only into the backend it was taken from"),
        ("schema_revision", "9999", "this version of the software does not know"),
        ("format", "something-else/1", "is not a manifest"),
    ],
)
def test_a_backup_this_database_cannot_take_is_refused(
    backend: str,
    backup: dict[str, Any],
    fresh_database_url: str,
    tmp_path: Path,
    key: str,
    value: str | None,
    message: str,
) -> None:
    target = fresh_database_url
    before = (_counts(target), _head(target))
    copied = _copy(backup, tmp_path)
    manifest = json.loads(services.manifest_path(copied).read_text())
    manifest[key] = OTHER_BACKEND[backend] if value is None else value
    services.manifest_path(copied).write_text(json.dumps(manifest))
    result = run_cli(target, "restore", "--from", str(copied))
    assert result.exit_code == 1
    assert message in result.output
    assert (_counts(target), _head(target)) == before
    services.manifest_path(copied).unlink()
    missing = run_cli(target, "restore", "--from", str(copied))
    assert missing.exit_code == 1
    assert "no manifest beside the backup" in missing.output


def test_restoring_over_data_needs_force(backup: dict[str, Any], fresh_database_url: str) -> None:
    target = fresh_database_url
    created = run_cli(
        target, "users", "create", "ivy", "--name", "Ivy", "--password", PASSWORD, "--role", "admin"
    )
    assert created.exit_code == 0, created.output
    before = (_counts(target), _head(target))
    refused = run_cli(target, "restore", "--from", str(backup["path"]))
    assert refused.exit_code == 1
    assert "not empty" in refused.output
    assert "--force" in refused.output
    assert (_counts(target), _head(target)) == before

    forced = run_cli(target, "restore", "--from", str(backup["path"]), "--force", "--json")
    assert forced.exit_code == 0, forced.output
    report = json.loads(forced.stdout)
    assert report["ok"] is True
    assert "user_account" in report["replaced_tables_with_rows"]
    assert report["row_counts"] == backup["manifest"]["row_counts"]
    assert run_cli(target, "audit", "verify").exit_code == 0
    # The account made before the restore is gone: the content is the backup's.
    assert run_cli(target, "users", "list", "--as", "ivy").exit_code == 1
    assert "replaced the content of a database" in _last_event(target)[2]


def test_a_backup_taken_while_another_connection_writes_is_one_state(
    backend: str, fresh_database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    """Writers go on during the backup (SQLite in WAL mode: a read transaction holds up none);
    the file and its manifest hold the same state, which verifies after a restore."""
    url = fresh_database_url
    made = run_cli(url, "users", "create", "ada", "--name", "Ada", "--password", PASSWORD, "--role", "admin")
    assert made.exit_code == 0, made.output
    writer_engine = make_engine(url)
    stop = threading.Event()
    commits: list[float] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            while not stop.is_set():
                with Session(writer_engine) as session:
                    audit.set_actor(session, audit.Actor.system())
                    audit.record_event(session, "concurrent_write", detail=str(len(commits)))
                    session.commit()
                commits.append(time.monotonic())
                time.sleep(0.002)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    calls: list[float] = []

    def slow_progress(_step: str, _fraction: float) -> None:
        calls.append(time.monotonic())
        time.sleep(0.02)  # a long copy, as of a large database

    engine = make_engine(url)
    thread = threading.Thread(target=write)
    thread.start()
    try:
        while len(commits) < 5:
            time.sleep(0.01)
        started = time.monotonic()
        manifest = services.backup_database(engine, tmp_path / "live.backup", progress=slow_progress, pages=4)
        finished = time.monotonic()
    finally:
        stop.set()
        thread.join()
        engine.dispose()
        writer_engine.dispose()
    assert not errors
    during = [t for t in commits if started < t < finished]
    assert len(calls) > 10
    assert len(during) >= 3, "the writer was held up by the backup"
    head = manifest.state.audit_chain_head
    assert 0 < head.seq < _head(url)[0]

    target = make_engine(empty_database_url)
    try:
        report = services.restore_database(target, tmp_path / "live.backup")
    finally:
        target.dispose()
    assert report.check.problems == ()
    assert report.check.chain.ok
    assert report.check.chain.entries_checked == head.seq
    assert report.check.audit_chain_head == head
    assert report.check.row_counts == manifest.state.row_counts


def test_the_backup_does_not_overwrite_the_database_itself(backend: str, fresh_database_url: str) -> None:
    if backend != "sqlite":
        pytest.skip("a PostgreSQL database is not a file")
    database = Path(fresh_database_url.removeprefix("sqlite:///"))
    size = database.stat().st_size
    result = run_cli(fresh_database_url, "backup", "--out", str(database))
    assert result.exit_code == 1
    assert "is the database itself" in result.output
    assert database.stat().st_size == size
    assert run_cli(fresh_database_url, "audit", "verify").exit_code == 0
