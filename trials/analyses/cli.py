"""`trials unblind CODE` (release arm-level results) and `trials analyze CODE`."""

import json
from pathlib import Path

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


@click.command("analyze")
@click.argument("code")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the results JSON to this file.",
)
@as_option
@json_option
@with_app
def analyze(code: str, out_file: Path | None, as_user: str, as_json: bool) -> None:
    """Run trial CODE's locked analysis plan and print the analysis-results dataset.

    Until the trial is unblinded the results are pooled: no number by arm, whoever asks."""
    from trials.analyses import services

    with acting(as_user) as (session, principal):
        document = services.analyze(code, session=session, by=principal)
    text = document.to_json()
    if out_file is not None:
        out_file.write_text(text, encoding="utf-8")
    if as_json:
        click.echo(text, nl=False)
    else:
        data = json.loads(text)
        primary = [r for r in data["results"] if r.get("primary")]
        state = "blinded (pooled only)" if data["blinded"] else "unblinded"
        lines = [f"{code}: {len(data['results'])} results, {state}; input sha256 {data['input_sha256']}"]
        for r in primary:
            lines.append(
                f"primary {r['analysis_id']}: {r['estimate']:.3f} ({r['ci_low']:.3f} to {r['ci_high']:.3f}), "
                f"p = {r['p_value']:.4g}"
            )
        click.echo("\n".join(lines))
