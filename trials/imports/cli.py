"""`trials import CODE FILE`, `trials import-history CODE` and `trials import-template KIND`."""

import sys
from pathlib import Path
from typing import Any

import click

from trials.core.cli import acting, as_option, emit, fail, json_option, with_app

KIND_CHOICE = click.Choice(["assessments", "engagement"])
_PHASES = {"validating": "Validating rows", "writing": "Writing rows   "}


class ProgressBars:
    """One click progress bar per phase of an import, on standard error."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.phase: str | None = None
        self.done = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.close()
            self.bar = click.progressbar(length=total, label=_PHASES.get(phase, phase), file=sys.stderr)
            self.bar.__enter__()
            self.phase, self.done = phase, 0
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def summary_text(data: dict[str, Any]) -> str:
    return (
        f"imported {data['row_count']} {data['kind']} rows from {data['filename']} as batch {data['id']}\n"
        f"  sha256 {data['sha256']}\n"
        f"  {data['safety_events']} safety events ({data['notifications']} notifications), "
        f"{data['data_queries']} data queries"
    )


@click.command("import")
@click.argument("code")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--kind", type=KIND_CHOICE, default=None, help="What the file holds (default: read from its header)."
)
@as_option
@json_option
@with_app
def import_file(code: str, path: Path, kind: str | None, as_user: str, as_json: bool) -> None:
    """Import the CSV FILE into trial CODE, all or nothing (format: docs/csv-import.md).

    Every row is validated before anything is written; any error refuses the whole file and
    lists each error by row, column and rule. The same file is imported only once.
    """
    from datetime import UTC, datetime

    from trials.imports import services

    content = path.read_bytes()
    kind = kind or services.guess_kind(content)
    if kind is None:
        fail("the file's header names neither an assessments nor an engagement file: give --kind")
    bars = ProgressBars()
    try:
        with acting(as_user) as (session, principal):
            summary = services.import_csv(
                code,
                str(kind),
                content,
                filename=path.name,
                session=session,
                by=principal,
                today=datetime.now(UTC).date(),
                progress=bars,
            )
            out = summary.model_dump(mode="json")
    finally:
        bars.close()
    emit(out, as_json, summary_text)


@click.command("import-history")
@click.argument("code")
@as_option
@json_option
@with_app
def import_history(code: str, as_user: str, as_json: bool) -> None:
    """The files imported into trial CODE, newest first (site staff: their sites')."""
    from trials.imports import services

    with acting(as_user) as (session, principal):
        out = [b.model_dump(mode="json") for b in services.list_batches(code, session=session, by=principal)]

    def text(rows: list[dict[str, Any]]) -> str:
        lines = [
            f"{r['created_at'][:19]}  {r['kind']:<11} {r['row_count']:>7} rows  {r['filename']}  "
            f"by {r['imported_by']}  sha256 {r['sha256'][:16]}…"
            for r in rows
        ]
        return "\n".join(lines) or "no file imported yet"

    emit(out, as_json, text)


@click.command("import-template")
@click.argument("kind", type=KIND_CHOICE)
def import_template(kind: str) -> None:
    """Print the header-only CSV template of KIND (assessments or engagement)."""
    from trials.imports.services import COLUMNS

    click.echo(",".join(COLUMNS[kind]))
