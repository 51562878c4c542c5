"""`trials audit ...`."""

import click

from trials.core.cli import emit, json_option, with_app


@click.group("audit")
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="SEQ:SHA256",
    help="An entry recorded outside the database (see `trials audit head`); repeatable.",
)
@json_option
@with_app
def verify(anchors: tuple[str, ...], as_json: bool) -> None:
    """Recompute the hash chain; exit 1 and name the first broken entry if it does not hold."""
    from dataclasses import asdict

    from trials.core.audit.services import Anchor, verify_chain
    from trials.core.db import db
    from trials.core.errors import DomainError

    try:
        parsed = [Anchor.parse(a) for a in anchors]
    except DomainError as exc:
        raise click.BadParameter(exc.detail, param_hint="--anchor") from None
    with db.engine.connect() as connection:
        report = verify_chain(connection, anchors=parsed)
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


@audit.command("head")
@json_option
@with_app
def head(as_json: bool) -> None:
    """Print the chain's last entry as an anchor (SEQ:SHA256) to keep outside the database."""
    from trials.core.audit.services import chain_head
    from trials.core.db import db

    with db.engine.connect() as connection:
        anchor = chain_head(connection)
    emit({"seq": anchor.seq, "hash": anchor.hash}, as_json, f"{anchor.seq}:{anchor.hash}")
