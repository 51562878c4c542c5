"""`trials backup --out FILE` and `trials restore --from FILE [--force]`."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trials.core.cli import acting, emit, fail, json_option, percent_bar, with_app

if TYPE_CHECKING:
    from sqlmodel import Session

    from trials.core.accounts.permissions import Principal


def _require_admin(session: "Session", principal: "Principal") -> None:
    """A named account must be an installation admin; without --as the system acts."""
    from trials.core.accounts.models import Role
    from trials.core.accounts.services import SYSTEM
    from trials.core.audit import services as audit
    from trials.core.errors import Forbidden

    if principal is SYSTEM:
        return
    if not any(g.role == Role.ADMIN and g.trial_id is None for g in principal.grants):
        raise Forbidden("only an admin may back up the database")
    audit.act_as_role(session, Role.ADMIN.value)


@click.command("backup")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The backup file; its manifest is written beside it as FILE.manifest.json.",
)
@click.option(
    "--as",
    "as_user",
    metavar="USERNAME",
    default=None,
    help="The admin taking the backup, recorded in the audit trail (default: the system, with "
    "the operating-system user).",
)
@json_option
@with_app
def backup(out: Path, as_user: str | None, as_json: bool) -> None:
    """Write a consistent backup of the database to the --out file while the app keeps serving
    (SQLite: online backup API; PostgreSQL: pg_dump --format=custom), with a manifest that lets
    a restore be checked. The backup is recorded in the audit trail."""
    from trials.backup import services
    from trials.core.db import db
    from trials.core.errors import DomainError

    with acting(as_user) as (session, principal):  # a wrong --as fails before anything is copied
        _require_admin(session, principal)
    with percent_bar("backup") as progress:
        try:
            manifest = services.backup_database(db.engine, out, progress=progress)
        except DomainError as exc:
            fail(exc.detail)
    with acting(as_user) as (session, principal):
        _require_admin(session, principal)
        services.record_backup(session, manifest, out)
    data: dict[str, Any] = {
        **manifest.to_dict(),
        "path": str(out),
        "manifest": str(services.manifest_path(out)),
    }

    def text(d: dict[str, Any]) -> str:
        head = d["audit_chain_head"]
        lines = [
            f"backup of the {d['backend']} database: {d['path']} ({d['file_bytes']} bytes)",
            f"  sha256 {d['file_sha256']}",
            f"  manifest {d['manifest']}",
            f"  schema {d['schema_revision']}; audit chain head {head['seq']}:{head['hash']}; "
            f"{sum(d['row_counts'].values())} rows in {len(d['row_counts'])} tables",
        ]
        lines += [
            f"  trial {t['code']}: data snapshot {t['data_snapshot_sha256'] or t['note']}"
            + ("" if t["arms_included"] else " (without the arms: blinded)")
            for t in d["trials"]
        ]
        return "\n".join(lines)

    emit(data, as_json, text)


@click.command("restore")
@click.option(
    "--from",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="A backup file written by `trials backup` (its manifest beside it).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace the content of a database that holds data (default: refused).",
)
@json_option
@with_app
def restore(source: Path, force: bool, as_json: bool) -> None:
    """Restore the configured database from a backup, then check it: the audit chain verifies
    and every trial's data snapshot hash, the chain head and the row counts match the manifest.

    Refused, with nothing changed: a file that does not match its manifest's SHA-256, a backup
    of the other backend or of a newer schema than this software knows, and a database that
    holds data (unless --force). Exit status 1 when refused or when the check fails.
    """
    from dataclasses import asdict

    from trials.backup import services
    from trials.core import migrate
    from trials.core.db import db
    from trials.core.errors import DomainError

    with percent_bar("restore") as progress:
        try:
            report = services.restore_database(db.engine, source, force=force, progress=progress)
        except DomainError as exc:
            fail(exc.detail)
    check = report.check
    at_head = check.schema_revision == migrate.head_revision()
    recorded = False
    if check.ok and at_head:
        with acting(None) as (session, _principal):
            services.record_restore(session, report, source)
        recorded = True
    data: dict[str, Any] = {
        "ok": check.ok,
        "file": str(source),
        "backup_created_at": report.manifest.created_at,
        "backend": report.manifest.backend,
        "replaced_tables_with_rows": list(report.replaced),
        "audit_chain": asdict(check.chain),
        "audit_chain_head": {"seq": check.audit_chain_head.seq, "hash": check.audit_chain_head.hash},
        "schema_revision": check.schema_revision,
        "row_counts": check.row_counts,
        "trials": [asdict(t) for t in check.trials],
        "problems": list(check.problems),
        "recorded_in_audit_trail": recorded,
    }

    def text(d: dict[str, Any]) -> str:
        head = d["audit_chain_head"]
        lines = [f"restored {d['file']} (taken {d['backup_created_at']}) into the {d['backend']} database"]
        chain = d["audit_chain"]
        if chain["ok"]:
            lines.append(f"  audit trail verified: {chain['entries_checked']} entries, chain intact")
        lines.append(f"  audit chain head {head['seq']}:{head['hash']}")
        lines += [
            f"  trial {t['code']}: data snapshot {t['data_snapshot_sha256'] or t['note']}"
            for t in d["trials"]
        ]
        if d["ok"]:
            lines.append(
                f"  matches the manifest: chain head, schema {d['schema_revision']}, "
                f"{sum(d['row_counts'].values())} rows in {len(d['row_counts'])} tables, "
                f"{len(d['trials'])} data snapshot(s)"
            )
        else:
            lines.append("  DOES NOT MATCH the backup's manifest:")
            lines += [f"    {p}" for p in d["problems"]]
        if not at_head:
            lines.append(
                f"  the schema is at revision {d['schema_revision']}: run `trials db upgrade` "
                "(the restore is recorded in the audit trail only at the current revision)"
            )
        return "\n".join(lines)

    emit(data, as_json, text)
    if not check.ok:
        raise click.exceptions.Exit(1)
