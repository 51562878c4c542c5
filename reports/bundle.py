"""The evidence bundle: a stored report written to a folder with its results and a manifest.

`report.pdf` (the signed copy too, when there is one), `results.json` (the analysis-results
dataset the report's numbers come from, byte for byte) and `manifest.json`: the SHA-256 and size
of every other file, the protocol and SAP hashes, the data snapshot hash, the audit chain's
head, the software versions and the signatures. Provenance goes in the manifest, never attached
to the PDF (DOMAIN.md section 4).
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlmodel import Session

from reports import services
from reports.models import GeneratedReport

SCHEMA = "trials.evidence-bundle"
SCHEMA_VERSION = 1


def _entry(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def write_bundle(report: GeneratedReport, out_dir: Path, *, session: Session, trial_code: str) -> Path:
    """Write the bundle of a stored report into OUT_DIR (created if needed); return the manifest's path."""
    from reports.build import ReportContext

    context = ReportContext.from_json(report.context_json)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "report.pdf", out_dir / "results.json"]
    files[0].write_bytes(services.report_file(report, signed=False, session=session, code=trial_code)[0])
    files[1].write_text(context.results_json, encoding="utf-8")
    signed = out_dir / "report-signed.pdf"
    copy = services.latest_signed_copy(report, session=session)
    if copy is not None:
        signed.write_bytes(services.report_file(report, signed=True, session=session, code=trial_code)[0])
        files.append(signed)
    else:  # a copy left from another report's bundle in the same folder does not belong here
        signed.unlink(missing_ok=True)
    provenance = dict(context.provenance)
    manifest = {
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
        "files": [_entry(path) for path in files],
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
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
