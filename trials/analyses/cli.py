"""`trials unblind CODE`: release arm-level results."""

import click

from trials.core.cli import acting, as_option, emit, json_option, with_app


@click.command("unblind")
@click.argument("code")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@as_option
@json_option
@with_app
def unblind(code: str, reason: str, as_user: str, as_json: bool) -> None:
    """Unblind trial CODE: its plan and database must be locked; sponsor or unblinded
    statistician. Arm-level results are released from then on."""
    from trials.analyses import unblinding

    with acting(as_user) as (session, principal):
        record = unblinding.unblind_trial(code, reason=reason, session=session, by=principal)
        out = {
            "trial_code": code,
            "unblinded": True,
            "unblinded_at": record.unblinded_at.isoformat(),
            "unblinded_by": record.unblinded_by,
            "reason": record.reason,
            "protocol_sha256": record.protocol_sha256,
        }
    emit(out, as_json, f"trial {code} is unblinded")
