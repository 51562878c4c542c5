"""`trials audit ...`."""

import click

from trials.core.cli import emit, json_option, with_app


@click.group("audit")
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@json_option
@with_app
def verify(as_json: bool) -> None:
    """Recompute the hash chain; exit 1 and name the first broken entry if it does not hold."""
    from dataclasses import asdict

    from trials.core.audit.services import verify_chain
    from trials.core.db import db

    with db.engine.connect() as connection:
        report = verify_chain(connection)
    if report.ok:
        emit(
            asdict(report),
            as_json,
            f"audit trail verified: {report.entries_checked} entries, chain intact",
        )
        return
    emit(
        asdict(report),
        as_json,
        f"audit trail BROKEN at entry #{report.broken_seq}"
        f"{f' (id {report.broken_id})' if report.broken_id else ''}: {report.problem}",
    )
    raise click.exceptions.Exit(1)
