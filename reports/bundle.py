"""The evidence bundle: a stored report written to a folder with its results and a manifest.

`report.pdf` (the signed copy too, when there is one), `results.json` (the analysis-results
dataset the report's numbers come from, byte for byte) and `manifest.json`: the SHA-256 and size
of every other file, the protocol and SAP hashes, the data snapshot hash, the audit chain's
head, the software versions and the signatures. Provenance goes in the manifest, never attached
to the PDF (DOMAIN.md section 4). The web and the API serve the same `results.json` and
`manifest.json` (`bundle_files`, `manifest`): one code path, each file checked against its
recorded hash before it is written or sent.

The submission datasets (`sdtm/`, `adam/`, written by `trials export`) belong to the bundle
when they are in its folder: the manifest lists each of their files with its hash, and a
`submission` section says when they were exported and what the conformance check found.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlmodel import Session

from reports import services
from reports.models import GeneratedReport

SCHEMA = "trials.evidence-bundle"
SCHEMA_VERSION = 1


SUBMISSION_FOLDERS = ("sdtm", "adam")


def _data_entry(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _entry(path: Path, root: Path) -> dict[str, Any]:
    return _data_entry(path.relative_to(root).as_posix(), path.read_bytes())


def _submission_entries(out_dir: Path) -> list[dict[str, Any]]:
    """Every file of the submission folders in OUT_DIR, hashed now, by relative path."""
    files = sorted(
        path
        for folder in SUBMISSION_FOLDERS
        if (out_dir / folder).is_dir()
        for path in (out_dir / folder).iterdir()
        if path.is_file()
    )
    return [_entry(path, out_dir) for path in files]


def _previous_submission(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("submission")
    except (OSError, ValueError, AttributeError):
        return None


def record_submission(out_dir: Path, *, trial_code: str, submission: dict[str, Any]) -> Path:
    """List the submission folders' files in OUT_DIR's manifest (written when there is none
    yet) with the export's `submission` section; return the manifest's path."""
    path = out_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        manifest = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "trial": trial_code, "files": []}
    if manifest.get("schema") != SCHEMA or manifest.get("trial") != trial_code:
        raise ValueError(f"{path} is not the evidence bundle manifest of trial {trial_code}")
    kept = [f for f in manifest.get("files", []) if f["name"].split("/", 1)[0] not in SUBMISSION_FOLDERS]
    manifest["files"] = kept + _submission_entries(out_dir)
    manifest["submission"] = submission
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def bundle_files(report: GeneratedReport, *, session: Session, trial_code: str) -> dict[str, bytes]:
    """The files of a stored report's bundle by name, in the manifest's order, each checked
    against its recorded hash: `report.pdf`, `results.json`, and `report-signed.pdf` when the
    report has a signed copy."""
    files = {
        "report.pdf": services.report_file(report, signed=False, session=session, code=trial_code)[0],
        "results.json": services.results_file(report, code=trial_code)[0],
    }
    if services.latest_signed_copy(report, session=session) is not None:
        signed = services.report_file(report, signed=True, session=session, code=trial_code)
        files["report-signed.pdf"] = signed[0]
    return files


def manifest(
    report: GeneratedReport,
    files: Mapping[str, bytes],
    *,
    session: Session,
    trial_code: str,
    submission_entries: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The manifest of a stored report's bundle: FILES (`bundle_files`) by hash and size, then
    the submission datasets' entries, the provenance of the stored context and the signatures."""
    provenance = dict(services.stored_context(report).provenance)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "trial": trial_code,
        "report": {
            "number": report.number,
            "variant": report.variant,
            "generated_at": report.generated_at.isoformat(),
            "generated_by": report.generated_by,
            "pdf_sha256": report.pdf_sha256,
            "context_sha256": report.context_sha256,
        },
        "files": [_data_entry(name, data) for name, data in files.items()] + list(submission_entries),
        "protocol": {
            "version": provenance.get("protocol_version"),
            "sha256": provenance.get("protocol_sha256"),
        },
        "sap": {"sha256": provenance.get("sap_sha256"), "locked_at": provenance.get("sap_locked_at")},
        "database_locked_at": provenance.get("database_locked_at"),
        "unblinded_at": provenance.get("unblinded_at"),
        "data_snapshot_sha256": provenance.get("data_snapshot_sha256"),
        "results_sha256": provenance.get("results_sha256"),
        "audit_head": provenance.get("audit_head"),
        "software": provenance.get("software"),
        "signatures": [services.signature_record(s) for s in services.signatures_of(report, session=session)],
    }


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """A manifest as `manifest.json` holds it."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def manifest_file(report: GeneratedReport, *, session: Session, trial_code: str) -> tuple[bytes, str, str]:
    """(manifest.json, SHA-256, file name) of a stored report's bundle made now from stored data:
    the manifest `write_bundle` writes to a folder without submission datasets (it lists the
    report's signatures and signed copy as they are now)."""
    files = bundle_files(report, session=session, trial_code=trial_code)
    data = manifest_text(manifest(report, files, session=session, trial_code=trial_code)).encode("utf-8")
    return data, hashlib.sha256(data).hexdigest(), f"{trial_code}-report-{report.number}-manifest.json"


def write_bundle(report: GeneratedReport, out_dir: Path, *, session: Session, trial_code: str) -> Path:
    """Write the bundle of a stored report into OUT_DIR (created if needed); return the manifest's path."""
    files = bundle_files(report, session=session, trial_code=trial_code)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
    if "report-signed.pdf" not in files:  # a copy left from another report's bundle does not belong here
        (out_dir / "report-signed.pdf").unlink(missing_ok=True)
    made = manifest(
        report, files, session=session, trial_code=trial_code, submission_entries=_submission_entries(out_dir)
    )
    path = out_dir / "manifest.json"
    previous = _previous_submission(path)
    if previous is not None and any((out_dir / f).is_dir() for f in SUBMISSION_FOLDERS):
        made["submission"] = previous
    path.write_text(manifest_text(made), encoding="utf-8")
    return path
