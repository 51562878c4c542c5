"""`export_submission`: a trial's SDTM and ADaM packages written to a folder, then checked.

Reads the trial the way the analyses do (the plan version the unblinding fixed, the clinical
records as frames, the analysis frames of `analysis.datasets`), adds what SDTM needs beyond
them (disposition reasons, site countries, the database lock date), builds both packages,
writes `sdtm/` and `adam/` (transport files, CSV copies, define.xml), runs the conformance
check on what was written, and puts the export on the audit trail with the files' hashes.

The packages carry the allocation: the export needs what the final report needs (a locked
plan, the database lock and the unblinding) and the right to generate reports.
"""

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlmodel import Session

from trials.analyses.services import plan_version
from trials.analyses.unblinding import unblinding_of
from trials.core.accounts.models import Site
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.errors import Conflict
from trials.dblock.services import current_lock
from trials.events.models import DispositionEvent
from trials.participants.models import Participant
from trials.participants.services import trial_by_code

if TYPE_CHECKING:
    import pandas as pd

    from reports.submission.check import Finding
    from reports.submission.metadata import Package
    from reports.submission.xpt import WrittenFile

FOLDERS = ("sdtm", "adam")


@dataclass(frozen=True)
class ExportResult:
    """What was written (paths relative to the output folder) and what the check found."""

    trial: str
    out_dir: Path
    files: list["WrittenFile"]
    findings: dict[str, list["Finding"]]
    data_snapshot_sha256: str
    sdtm: "Package"
    adam: "Package"

    @property
    def errors(self) -> int:
        return sum(1 for found in self.findings.values() for f in found if f.severity == "error")

    def manifest_entries(self) -> list[dict[str, Any]]:
        """The files as the evidence bundle's manifest lists them."""
        return [{"name": str(f.path), "sha256": f.sha256, "bytes": f.size} for f in self.files]


def _disposition(trial_id: Any, *, session: Session) -> "pd.DataFrame":
    import pandas as pd

    d, p = DispositionEvent.__table__, Participant.__table__  # type: ignore[attr-defined]
    rows = (
        session.connection()
        .execute(
            select(p.c.label, d.c.kind, d.c.event_date, d.c.other_treatment, d.c.reason)
            .select_from(d.join(p, p.c.id == d.c.participant_id))
            .where(d.c.trial_id == trial_id, d.c.status == "current")
            .order_by(p.c.label, d.c.event_date, d.c.kind)
        )
        .all()
    )
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["subject", "kind", "on", "other_treatment", "reason"]
    )


def _sites(trial_id: Any, *, session: Session) -> "pd.DataFrame":
    import pandas as pd

    s, p = Site.__table__, Participant.__table__  # type: ignore[attr-defined]
    rows = (
        session.connection()
        .execute(
            select(s.c.code, s.c.name, s.c.country)
            .where(s.c.id.in_(select(p.c.site_id).where(p.c.trial_id == trial_id)))
            .order_by(s.c.code)
        )
        .all()
    )
    return pd.DataFrame([tuple(r) for r in rows], columns=["code", "name", "country"])


def _refuse_foreign_content(out_dir: Path, *, code: str, snapshot: str) -> None:
    """Refuse, before anything is written, to replace folders that an export did not write, or
    to put the datasets beside an evidence bundle of other data."""
    from lxml import etree

    for folder in FOLDERS:
        path = out_dir / folder
        if not path.exists():
            continue
        ours = False
        if path.is_dir() and (path / "define.xml").is_file():
            try:
                parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
                root = etree.parse(str(path / "define.xml"), parser).getroot()
                ours = root.get("SourceSystem") == "trials" and all(
                    p.is_file() and p.suffix in (".xpt", ".csv", ".xml") for p in path.iterdir()
                )
            except etree.XMLSyntaxError:
                ours = False
        if not ours:
            raise Conflict(
                f"{path} exists and is not a package written by `trials export`: move it away "
                "or export into another folder (nothing was written)"
            )
    manifest = out_dir / "manifest.json"
    if manifest.is_file():
        try:
            bundle = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            bundle = None
        if not isinstance(bundle, dict) or bundle.get("schema") != "trials.evidence-bundle":
            raise Conflict(f"{manifest} is not an evidence bundle's manifest (nothing was written)")
        if bundle.get("trial") != code:
            raise Conflict(
                f"{out_dir} holds the evidence bundle of trial {bundle.get('trial')} (nothing was written)"
            )
        report = bundle.get("report") or {}
        if report.get("variant") == "blinded":
            raise Conflict(
                f"{out_dir} holds the bundle of a blinded progress report: the submission datasets "
                "go with the final report (nothing was written)"
            )
        theirs = bundle.get("data_snapshot_sha256")
        if theirs is not None and theirs != snapshot:
            raise Conflict(
                f"{out_dir} holds an evidence bundle of another data snapshot ({theirs[:12]}..., "
                f"now {snapshot[:12]}...): export into another folder (nothing was written)"
            )


def export_submission(
    code: str,
    out_dir: Path,
    *,
    session: Session,
    by: Principal,
    progress: Callable[[str, float], None] | None = None,
) -> ExportResult:
    """Write trial CODE's `sdtm/` and `adam/` packages into OUT_DIR and check them.

    Raises
    ------
    Conflict
        When the plan is not locked, the database not locked or the trial not unblinded.
    TransportError
        When a dataset breaks a transport rule; nothing is written then.
    """
    from reports.gather import final_report_missing
    from reports.submission.adam import build_adam
    from reports.submission.check import check_folder
    from reports.submission.sdtm import SdtmSource, build_sdtm
    from reports.submission.xpt import TransportError, transport_problems, write_package
    from trials.analyses.datasets import analysis_frames, load_raw

    def step(label: str, fraction: float) -> None:
        if progress:
            progress(label, fraction)

    trial = trial_by_code(code, session=session)
    authorize(by, Permission.GENERATE_REPORT, session=session, trial_id=trial.id)
    missing = final_report_missing(code, session=session)
    if missing:
        raise Conflict(
            f"the submission datasets of trial {code} carry the allocation and need "
            f"{', '.join(missing)}: it is still missing"
        )
    lock = current_lock(trial.id, session=session)
    unblinding = unblinding_of(trial.id, session=session)
    if lock is None or unblinding is None:  # final_report_missing has checked both
        raise Conflict(f"trial {code} is not locked and unblinded")
    _version, document = plan_version(trial, unblinding, session=session)

    step("reading the trial's records", 0.05)
    raw = load_raw(trial.id, document, session=session)
    frames = analysis_frames(raw, document)
    source = SdtmSource(
        study_id=trial.code,
        document=document,
        raw=raw,
        disposition=_disposition(trial.id, session=session),
        sites=_sites(trial.id, session=session),
        data_cutoff=lock.locked_at.date(),
    )
    step("building SDTM", 0.2)
    sdtm = build_sdtm(source)
    step("building ADaM", 0.4)
    adam = build_adam(frames, document, study_id=trial.code, dm=sdtm.frames["DM"], study_name=trial.title)

    snapshot = raw.snapshot_sha256()
    _refuse_foreign_content(out_dir, code=trial.code, snapshot=snapshot)
    step("checking the transport rules", 0.5)
    problems = [p for package in (sdtm, adam) for p in transport_problems(package)]
    if problems:
        raise TransportError(
            f"the submission datasets break {len(problems)} transport constraint(s): "
            + "; ".join(p.message for p in problems[:5]),
            problems,
        )

    # Both packages are written into one staging folder first and moved into place only when
    # both are complete: an export never leaves new SDTM beside old ADaM.
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export.", dir=out_dir))
    try:
        files: list[WrittenFile] = []
        for n, package in enumerate((sdtm, adam)):
            step(f"writing {package.folder}/", 0.55 + 0.15 * n)
            files.extend(write_package(package, staging / package.folder))
        for folder in FOLDERS:
            if (out_dir / folder).exists():
                (out_dir / folder).rename(staging / f"previous-{folder}")
            (staging / folder).rename(out_dir / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    findings: dict[str, list[Finding]] = {}
    for n, folder in enumerate(FOLDERS):
        step(f"checking {folder}/", 0.85 + 0.07 * n)
        findings[folder] = check_folder(out_dir / folder)

    digest = hashlib.sha256(
        json.dumps([[str(f.path), f.sha256] for f in files], separators=(",", ":")).encode()
    ).hexdigest()
    errors = sum(1 for found in findings.values() for f in found if f.severity == "error")
    audit.record_event(
        session,
        "submission_exported",
        table_name="trial",
        record_id=str(trial.id),
        detail=(
            f"SDTM and ADaM packages: {len(files)} files, list sha256 {digest}; "
            f"data snapshot {snapshot}; conformance errors {errors}"
        ),
        trial_id=trial.id,
    )
    step("done", 1.0)
    return ExportResult(trial.code, out_dir, files, findings, snapshot, sdtm, adam)
