"""`trials report CODE --out DIR` (generate and write the evidence bundle), `trials reports CODE`
(the history), `trials sign-report CODE NUMBER` and `trials worker` (RQ)."""

import uuid
from pathlib import Path
from typing import Any

import click

from trials.core.cli import acting, as_option, emit, fail, json_option, percent_bar, with_app


@click.command("report")
@click.argument("code")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for report.pdf, results.json and manifest.json.",
)
@click.option(
    "--variant",
    type=click.Choice(["blinded", "final"]),
    default=None,
    help="Default: final once the trial is unblinded, blinded before.",
)
@as_option
@json_option
@with_app
def report(code: str, out_dir: Path, variant: str | None, as_user: str, as_json: bool) -> None:
    """Generate trial CODE's evidence report, store it, and write the evidence bundle to OUT."""
    from reports import bundle, services
    from reports.models import GeneratedReport, Variant
    from trials.core.db import db
    from trials.core.errors import DomainError

    with percent_bar(f"{variant or 'evidence'} report") as progress:
        try:
            report_id = services.generate_now(
                code,
                Variant(variant) if variant else None,
                username=as_user,
                channel="cli",
                on_progress=progress,
            )
        except DomainError as exc:
            fail("; ".join([exc.detail, *(e.message for e in exc.errors)]))
    with db.transaction() as session:
        stored = session.get(GeneratedReport, report_id)
        assert stored is not None
        manifest = bundle.write_bundle(stored, out_dir, session=session, trial_code=code)
        out: dict[str, Any] = {
            "trial": code,
            "report": stored.number,
            "variant": stored.variant,
            "pdf_sha256": stored.pdf_sha256,
            "pdf_bytes": stored.pdf_bytes,
            "data_snapshot_sha256": stored.data_snapshot_sha256,
            "manifest": str(manifest),
            "out_dir": str(out_dir),
        }
    emit(
        out,
        as_json,
        lambda d: (
            f"{d['trial']} report {d['report']} ({d['variant']}): {out_dir / 'report.pdf'} "
            f"sha256 {d['pdf_sha256']}\nmanifest: {d['manifest']}"
        ),
    )


@click.command("reports")
@click.argument("code")
@as_option
@json_option
@with_app
def reports(code: str, as_user: str, as_json: bool) -> None:
    """List trial CODE's generated reports with their hashes and signatures."""
    from reports import services

    with acting(as_user) as (session, principal):
        rows = [
            {
                "number": r.number,
                "variant": r.variant,
                "generated_at": r.generated_at.isoformat(),
                "generated_by": r.generated_by,
                "pdf_sha256": r.pdf_sha256,
                "data_snapshot_sha256": r.data_snapshot_sha256,
                "signatures": [s.manifestation for s in services.signatures_of(r, session=session)],
            }
            for r in services.list_reports(code, session=session, by=principal)
        ]

    def text(data: list[dict[str, Any]]) -> str:
        if not data:
            return f"{code}: no report yet"
        lines = []
        for r in data:
            lines.append(
                f"{r['number']:>3} {r['variant']:<8} {r['generated_at'][:19]} "
                f"{r['generated_by']:<16} {r['pdf_sha256']}"
            )
            lines += [f"      signed: {s}" for s in r["signatures"]]
        return "\n".join(lines)

    emit(rows, as_json, text)


@click.command("sign-report")
@click.argument("code")
@click.argument("number", type=click.IntRange(1))
@click.option(
    "--meaning",
    type=click.Choice(["review", "approval", "authorship"]),
    required=True,
    help="What the signature means.",
)
@click.option(
    "--password",
    prompt="Your password (electronic signature)",
    hide_input=True,
    help="Asked for when not given; checked again as the signature requires.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the bundle with the signed copy to this folder.",
)
@as_option
@json_option
@with_app
def sign_report(
    code: str, number: int, meaning: str, password: str, out_dir: Path | None, as_user: str, as_json: bool
) -> None:
    """Sign report NUMBER of trial CODE (statistician or sponsor): stores a signed copy."""
    from flask import current_app

    from reports import bundle, services

    with acting(as_user) as (session, principal):
        signature = services.sign_report(
            code,
            number,
            meaning=meaning,
            password=password,
            session=session,
            by=principal,
            lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
        )
    # The signature is committed; the signed copy renders outside the transaction.
    copy = services.make_signed_copy(uuid.UUID(signature.record_id), username=as_user, channel="cli")
    out: dict[str, Any] = {
        "signature": signature.manifestation,
        "signed_copy_sha256": copy.pdf_sha256,
        "signatures": copy.signatures,
    }
    if out_dir is not None:
        with acting(as_user) as (session, principal):
            stored = services.get_report(code, number, session=session, by=principal)
            out["manifest"] = str(bundle.write_bundle(stored, out_dir, session=session, trial_code=code))
    emit(out, as_json, lambda d: f"signed: {d['signature']}\nsigned copy sha256 {d['signed_copy_sha256']}")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the queued jobs, then stop.")
@with_app
def worker(burst: bool) -> None:
    """Run report jobs from the RQ queue (needs REDIS_URL)."""
    from flask import current_app

    from reports import jobs

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("REDIS_URL"):
        fail("set REDIS_URL (or TRIALS_REDIS_URL) to the Redis server the web app queues jobs on")
    jobs.work(app, burst=burst)


def _findings_text(findings: dict[str, list[Any]]) -> str:
    lines = []
    for folder, found in findings.items():
        errors = sum(1 for f in found if f.severity == "error")
        lines.append(f"{folder}/: {errors} error(s), {len(found) - errors} warning(s)")
        lines += [
            f"  {f.severity:<7} {f.rule:<18} {'.'.join(x for x in (f.dataset, f.variable) if x) or '-'}: "
            f"{f.message}"
            for f in found
        ]
    return "\n".join(lines)


def _findings_json(findings: dict[str, list[Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        folder: [
            {
                "severity": f.severity,
                "rule": f.rule,
                "dataset": f.dataset,
                "variable": f.variable,
                "message": f.message,
                "count": f.count,
            }
            for f in found
        ]
        for folder, found in findings.items()
    }


@click.command("export")
@click.argument("code", required=False)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for sdtm/ and adam/ (an evidence bundle's folder: its manifest lists them).",
)
@click.option(
    "--check",
    "check_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Only check the sdtm/ and adam/ folders in this folder (conformance check); export nothing.",
)
@click.option(
    "--as", "as_user", metavar="USERNAME", default=None, help="Act as this account (for an export)."
)
@json_option
@with_app
def export(
    code: str | None, out_dir: Path | None, check_dir: Path | None, as_user: str | None, as_json: bool
) -> None:
    """Write trial CODE's SDTM and ADaM datasets (SAS XPORT v5, CSV, define.xml) to OUT and check
    them (the findings are printed; the files stay written); or, with --check DIR, check folders
    already written, exiting 1 when the check finds an error."""
    if check_dir is not None:
        if code is not None or out_dir is not None or as_user is not None:
            raise click.UsageError("--check takes a folder and nothing else")
        from reports.submission.check import check_package_folders

        findings = check_package_folders(check_dir)
        if not findings:
            fail(f"{check_dir} holds neither sdtm/ nor adam/")
        emit(_findings_json(findings), as_json, lambda _d: _findings_text(findings))
        if any(f.severity == "error" for found in findings.values() for f in found):
            raise click.exceptions.Exit(1)
        return
    if code is None or out_dir is None or as_user is None:
        raise click.UsageError("give CODE, --out DIR and --as USERNAME (or --check DIR)")

    from datetime import UTC, datetime

    from reports import bundle
    from reports.submission.export import export_submission

    with percent_bar(f"{code} submission datasets") as progress, acting(as_user) as (session, principal):
        result = export_submission(code, out_dir, session=session, by=principal, progress=progress)
    manifest = bundle.record_submission(
        out_dir,
        trial_code=code,
        submission={
            "exported_at": datetime.now(UTC).isoformat(),
            "exported_by": as_user,
            "data_snapshot_sha256": result.data_snapshot_sha256,
            "conformance": {
                folder: {
                    "errors": sum(1 for f in found if f.severity == "error"),
                    "warnings": sum(1 for f in found if f.severity != "error"),
                }
                for folder, found in result.findings.items()
            },
        },
    )
    out = {
        "trial": code,
        "out_dir": str(out_dir),
        "files": result.manifest_entries(),
        "manifest": str(manifest),
        "findings": _findings_json(result.findings),
    }
    emit(
        out,
        as_json,
        lambda d: "\n".join(
            [f"{len(d['files'])} files written to {out_dir} (sdtm/, adam/); manifest: {d['manifest']}"]
            + [_findings_text(result.findings)]
        ),
    )
