"""`trials protocol ...`: register, validate, show, diff, amend and lock protocols."""

import sys
from pathlib import Path
from typing import Any

import click

from trials.core.cli import acting, as_option, emit, fail, json_option, with_app

_file = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))


def _read(file: Path) -> Any:
    from protocols import services

    return services.Source(file.read_bytes(), services.format_from_name(file.name))


def _summary(version: Any, trial_code: str, signature: Any = None) -> dict[str, Any]:
    return {
        "trial": trial_code,
        "version": version.version,
        "status": version.status,
        "content_hash": version.content_hash,
        "amendment_reason": version.amendment_reason,
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
        "locked_at": version.locked_at.isoformat() if version.locked_at else None,
        "signature": signature.manifestation if signature else None,
    }


@click.group("protocol")
def protocol() -> None:
    """Protocols and analysis plans: versioned, validated, locked by hash."""


@protocol.command("validate")
@_file
@json_option
@with_app
def validate(file: Path, as_json: bool) -> None:
    """Check a protocol document without storing anything; print its content hash."""
    from protocols.document import content_hash
    from trials.core.errors import DomainError

    try:
        sub = _read(file).parse()
    except DomainError as exc:
        _refuse(exc, as_json)
    digest = content_hash(sub.document)
    emit({"valid": True, "content_hash": digest}, as_json, f"valid; sha256 {digest}")


def _refuse(exc: Any, as_json: bool) -> None:
    if as_json:
        emit({"valid": False, "errors": [e.__dict__ for e in exc.errors]}, True)
        raise click.exceptions.Exit(1)
    fail(exc.detail + "".join(f"\n  {e.message}" for e in exc.errors))


@protocol.command("register")
@_file
@as_option
@json_option
@with_app
def register(file: Path, as_user: str, as_json: bool) -> None:
    """Register FILE as version 1 (a draft) of its trial's protocol."""
    from protocols import services

    with acting(as_user) as (session, principal):
        version = services.register(_read(file), session=session, by=principal)
        out = _summary(version, version_trial_code(version, session))
    emit(
        out,
        as_json,
        f"registered {out['trial']} version {out['version']} (draft); sha256 {out['content_hash']}",
    )


def version_trial_code(version: Any, session: Any) -> str:
    from trials.core.accounts.models import Trial

    trial = session.get(Trial, version.trial_id)
    return str(trial.code)


@protocol.command("amend")
@click.argument("code")
@_file
@click.option("--reason", required=True, help="Why the protocol changes (recorded and reported).")
@as_option
@json_option
@with_app
def amend(code: str, file: Path, reason: str, as_user: str, as_json: bool) -> None:
    """Create the next version of CODE's protocol from FILE."""
    from protocols import services

    with acting(as_user) as (session, principal):
        version = services.amend(code, _read(file), reason=reason, session=session, by=principal)
        out = _summary(version, code)
    emit(out, as_json, f"amended {code}: version {out['version']} (draft); sha256 {out['content_hash']}")


@protocol.command("update")
@click.argument("code")
@click.argument("version", type=int)
@_file
@click.option("--reason", required=True)
@as_option
@json_option
@with_app
def update(code: str, version: int, file: Path, reason: str, as_user: str, as_json: bool) -> None:
    """Replace the document of draft VERSION of CODE with FILE."""
    from protocols import services

    with acting(as_user) as (session, principal):
        row = services.update_draft(code, version, _read(file), reason=reason, session=session, by=principal)
        out = _summary(row, code)
    emit(out, as_json, f"updated {code} version {version}; sha256 {out['content_hash']}")


@protocol.command("show")
@click.argument("code")
@click.option("--version", "number", type=int, default=None, help="Default: the latest version.")
@click.option("--document", "with_document", is_flag=True, help="Include the document.")
@as_option
@json_option
@with_app
def show(code: str, number: int | None, with_document: bool, as_user: str, as_json: bool) -> None:
    """Show a version of CODE's protocol: status, hash, lock and signature."""
    import json

    from protocols import services

    with acting(as_user) as (session, principal):
        version = services.get_version(code, number, session=session, by=principal)
        out = _summary(version, code, services.signature_of(version, session=session))
        if with_document:
            out["document"] = json.loads(version.document_json)

    def text(data: dict[str, Any]) -> str:
        lines = [
            f"{data['trial']} version {data['version']}: {data['status']}",
            f"  sha256     {data['content_hash']}",
            f"  created    {data['created_at']} by {data['created_by']}",
        ]
        if data["amendment_reason"]:
            lines.append(f"  amendment  {data['amendment_reason']}")
        if data["signature"]:
            lines.append(f"  signed     {data['signature']}")
        if with_document:
            lines.append(json.dumps(data["document"], indent=2))
        return "\n".join(lines)

    emit(out, as_json, text)


@protocol.command("diff")
@click.argument("code")
@click.argument("old", type=int)
@click.argument("new", type=int)
@as_option
@json_option
@with_app
def diff(code: str, old: int, new: int, as_user: str, as_json: bool) -> None:
    """Field-by-field changes between versions OLD and NEW of CODE's protocol."""
    import json

    from protocols import services

    with acting(as_user) as (session, principal):
        changes = [c.__dict__ for c in services.diff(code, old, new, session=session, by=principal)]

    def text(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no changes"
        return "\n".join(
            f"{r['kind']:<8} {r['path']}: {json.dumps(r['old'])} -> {json.dumps(r['new'])}" for r in rows
        )

    emit(changes, as_json, text)


@protocol.command("lock")
@click.argument("code")
@click.option("--version", "number", type=int, default=None, help="Default: the latest version.")
@click.option("--password-stdin", is_flag=True, help="Read the signing password from standard input.")
@as_option
@json_option
@with_app
def lock(code: str, number: int | None, password_stdin: bool, as_user: str, as_json: bool) -> None:
    """Lock a draft with your approval signature (password again); print the hash."""
    from flask import current_app

    from protocols import services

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt(f"Password of {as_user} (signature meaning: approval)", hide_input=True)
    with acting(as_user) as (session, principal):
        target = number or services.get_version(code, None, session=session, by=principal).version
        version, signature = services.lock(
            code,
            target,
            password=password,
            session=session,
            by=principal,
            lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
        )
        out = _summary(version, code, signature)
    emit(
        out,
        as_json,
        f"locked {code} version {out['version']}\nsha256 {out['content_hash']}\n{out['signature']}",
    )
