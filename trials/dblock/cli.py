"""`trials db-lock` and `trials db-unlock`: a trial's database lock (sponsor only)."""

from typing import Any

import click

from trials.core.cli import acting, as_option, emit, json_option, with_app

reason_option = click.option("--reason", required=True, help="Why (recorded in the audit trail).")


@click.command("db-lock")
@click.argument("code")
@reason_option
@as_option
@json_option
@with_app
def db_lock(code: str, reason: str, as_user: str, as_json: bool) -> None:
    """Lock trial CODE's database: no entry or change of its data until it is unlocked."""
    from trials.dblock import services

    with acting(as_user) as (session, principal):
        row = services.lock_database(code, reason=reason, session=session, by=principal)
        out: dict[str, Any] = {
            "trial_code": code,
            "locked": True,
            "locked_at": row.locked_at.isoformat(),
            "locked_by": row.locked_by,
            "reason": row.reason,
        }
    emit(out, as_json, f"the database of {code} is locked")


@click.command("db-unlock")
@click.argument("code")
@reason_option
@as_option
@json_option
@with_app
def db_unlock(code: str, reason: str, as_user: str, as_json: bool) -> None:
    """Unlock trial CODE's database (the reason is recorded in the audit trail)."""
    from trials.dblock import services

    with acting(as_user) as (session, principal):
        services.unlock_database(code, reason=reason, session=session, by=principal)
    out = {"trial_code": code, "locked": False, "reason": reason.strip()}
    emit(out, as_json, f"the database of {code} is unlocked")
