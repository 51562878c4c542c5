"""The `trials` command line: a first-class interface next to the web and the API.

Only click is imported at start-up (`trials --help` stays fast); each command imports what it
uses. Commands that report accept `--json`; commands that change data act `--as` an account.
"""

import os
import sys
from pathlib import Path
from typing import Any

import click

from protocols.cli import protocol
from reports.cli import export, report, reports, sign_report, worker
from trials.analyses.cli import analyze, unblind
from trials.backup.cli import backup, restore
from trials.core.accounts.cli import sites, users
from trials.core.audit.cli import audit
from trials.core.cli import AppLoader, emit, json_option, with_app
from trials.dblock.cli import db_lock, db_unlock
from trials.events.cli import ae, disposition, unblind_participant, unblindings
from trials.imports.cli import import_file, import_history, import_template
from trials.participants.cli import participants
from trials.randomization.cli import allocation, go_live, list_participants, randomize
from trials.safety.cli import outbox, safety
from trials.simulate.cli import simulate


def _create_app() -> Any:
    from trials.app import create_app

    return create_app()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trials")
@click.pass_context
def main(ctx: click.Context) -> None:
    """trials: evidence platform for digital-therapy clinical trials.

    The database is TRIALS_DATABASE_URL (default: SQLite under instance/).
    """
    loader = AppLoader(_create_app)
    ctx.obj = loader
    ctx.call_on_close(loader.close)


main.add_command(users)
main.add_command(sites)
main.add_command(audit)
main.add_command(protocol)
participants.add_command(list_participants)
main.add_command(participants)
main.add_command(go_live)
main.add_command(randomize)
main.add_command(allocation)
main.add_command(db_lock)
main.add_command(db_unlock)
main.add_command(import_file)
main.add_command(import_history)
main.add_command(import_template)
main.add_command(safety)
main.add_command(outbox)
main.add_command(simulate)
main.add_command(unblind)
main.add_command(analyze)
main.add_command(ae)
main.add_command(disposition)
main.add_command(unblind_participant)
main.add_command(unblindings)
main.add_command(report)
main.add_command(export)
main.add_command(reports)
main.add_command(sign_report)
main.add_command(worker)
main.add_command(backup)
main.add_command(restore)


@main.group("db")
def db_group() -> None:
    """Database schema (alembic migrations: the only way the schema changes)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@json_option
@with_app
def db_upgrade(revision: str, as_json: bool) -> None:
    """Migrate the database to REVISION (default: head)."""
    _migrate("upgrade", revision, as_json)


def _migrate(direction: str, revision: str, as_json: bool) -> None:
    from flask import current_app

    from trials.core import migrate

    url = current_app.config["DATABASE_URL"]
    getattr(migrate, direction)(url, revision)
    now = migrate.current(url) or None
    emit({"revision": now}, as_json, f"database at {now or 'base'}")


@db_group.command("downgrade")
@click.argument("revision")
@json_option
@with_app
def db_downgrade(revision: str, as_json: bool) -> None:
    """Migrate the database down to REVISION ("base" removes every table)."""
    _migrate("downgrade", revision, as_json)


@db_group.command("current")
@json_option
@with_app
def db_current(as_json: bool) -> None:
    """Show the database's migration revision."""
    from flask import current_app

    from trials.core import migrate

    revision = migrate.current(current_app.config["DATABASE_URL"])
    emit({"revision": revision or None}, as_json, revision or "base (not migrated)")


@main.command("demo")
@click.option(
    "--participants",
    type=click.IntRange(1, 100_000),
    default=300,
    show_default=True,
    help="Participants to simulate.",
)
@click.option("--seed", type=int, default=20261126, show_default=True, help="Seed for the simulation.")
@click.option(
    "--in-progress",
    is_flag=True,
    help="Stop before the database lock: the trial stays open and blinded (pooled results only).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Folder for the outputs.",
)
@json_option
@with_app
def demo(participants: int, seed: int, in_progress: bool, out_dir: Path, as_json: bool) -> None:
    """Play the example trial to its end on the configured database, non-interactively: protocol,
    conduct, database lock, unblinding, and the final evidence bundle in OUT."""
    from trials.demo import run_demo

    result = run_demo(participants=participants, seed=seed, out_dir=out_dir, in_progress=in_progress)

    def text(data: dict[str, Any]) -> str:
        lines = [
            f"Demo trial {data['trial']} at sites {', '.join(data['sites'])}.",
            "Demo accounts (username / password / role):",
        ]
        lines += [f"  {a['username']:<14} {a['password']:<26} {a['role']}" for a in data["accounts"]]
        p = data["protocol"]
        lines.append(
            f"Protocol {p['trial']} version {p['version']} {p['status']}: sha256 {p['content_hash']}"
        )
        if p["signature"]:
            lines.append(f"  signed: {p['signature']}")
        lines.append(f"Live: allocation list sha256 {p['allocation']['list_sha256']}")
        sim = data["simulation"]
        if sim["simulated"]:
            lines.append(
                f"Simulated: {sim['screened']} screened, {sim['randomized']} randomized, "
                f"{sim['assessments']} assessments, {sim['safety_events']} safety events, "
                f"dates {sim['first_date']} to {sim['last_date']} (seed {sim['seed']})"
            )
        else:
            lines.append(f"Already simulated: {sim['participants_on_record']} participants on record")
        end, r = data["end"], data["report"]
        if r is None:
            lines.append(f"In progress (blinded); pooled analysis results: {data['results']['path']}")
        else:
            lines.append(f"Database locked {end['database_locked_at']}; unblinded {end['unblinded_at']}")
            lines.append(f"Final report {r['number']}: sha256 {r['pdf_sha256']}")
            lines.append(f"Evidence bundle (report.pdf, results.json, manifest.json): {r['path']}")
            sub = data["submission"]
            lines.append(f"Submission datasets ({sub['files']} files): {', '.join(sub['folders'])}")
            for folder in ("sdtm", "adam"):
                lines.append(
                    f"  {folder}/ conformance check: {sub[folder]['errors']} error(s), "
                    f"{sub[folder]['warnings']} warning(s)"
                )
                lines += [f"    {line}" for line in sub[folder]["findings"]]
        return "\n".join(lines)

    emit(result, as_json, text)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="One per core is best.")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web app and API with gunicorn."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    argv = [
        str(gunicorn),
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        "-",
        "trials:create_app()",
    ]
    click.echo(f"Serving on http://{host}:{port}")
    os.execv(argv[0], argv)
