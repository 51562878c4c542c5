"""The report context: what the gathered inputs say, as plain, formatted values.

Pure: no database. Every number printed comes from the analysis-results JSON or from a
computation below on the same data snapshot (baseline table, engagement, safety, listings),
and is formatted by the functions of this module only (estimates to 2 decimals, p-values as
``<0.001`` or to 3 decimals, intervals as ``(low, high)``).

The blinded context is made from frames whose arm column (and every column derived from the
arm) is dropped before anything is computed, and from the blinded results: it cannot hold a
number by arm.
"""

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reports.build import ReportContext

if TYPE_CHECKING:
    import pandas as pd

    from reports.gather import Gathered

NOT_ESTIMABLE = "NE"

# --------------------------------------------------------------------------------------------
# Number formatting: the one place
# --------------------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_estimate(value: Any, digits: int = 2) -> str:
    """An estimate to `digits` decimals ("NE" when missing or not finite; no "-0.00")."""
    number = _finite(value)
    if number is None:
        return NOT_ESTIMABLE
    text = f"{number:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_ci(low: Any, high: Any, digits: int = 2) -> str:
    """A confidence interval: ``(low, high)``."""
    return f"({fmt_estimate(low, digits)}, {fmt_estimate(high, digits)})"


def fmt_estimate_ci(value: Any, low: Any, high: Any, digits: int = 2) -> str:
    return f"{fmt_estimate(value, digits)} {fmt_ci(low, high, digits)}"


def fmt_p(value: Any) -> str:
    """A p-value: ``<0.001`` below 0.001, else 3 decimals ("NE" when missing)."""
    number = _finite(value)
    if number is None:
        return NOT_ESTIMABLE
    return "<0.001" if number < 0.001 else f"{number:.3f}"


def fmt_count_pct(count: int, total: int) -> str:
    """``n (x.x%)`` of a total (``n`` alone when the total is 0)."""
    return f"{count} ({100 * count / total:.1f}%)" if total else f"{count}"


def fmt_number(value: Any, digits: int = 1) -> str:
    """A descriptive number (a mean, a median, hours) to `digits` decimals."""
    return fmt_estimate(value, digits)


def fmt_timestamp(value: str | None) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS UTC`` (empty when missing)."""
    if not value:
        return ""
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _label(code: str) -> str:
    return code.replace("_", " ")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class Results:
    """The analysis-results JSON, looked up by analysis id."""

    def __init__(self, text: str) -> None:
        self.data: dict[str, Any] = json.loads(text)
        self.records: list[dict[str, Any]] = self.data["results"]
        self.by_id: dict[str, dict[str, Any]] = {r["analysis_id"]: r for r in self.records}

    @property
    def blinded(self) -> bool:
        return bool(self.data["blinded"])

    def get(self, analysis_id: str) -> dict[str, Any] | None:
        return self.by_id.get(analysis_id)

    def where(self, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def primary(self) -> dict[str, Any] | None:
        return next((r for r in self.records if r.get("primary")), None)


def result_cells(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """A result as printed: estimate, interval, p-value, n, notes."""
    if record is None:
        return {"estimate": NOT_ESTIMABLE, "ci": fmt_ci(None, None), "p": NOT_ESTIMABLE, "n": "", "notes": []}
    return {
        "estimate": fmt_estimate(record.get("estimate")),
        "ci": fmt_ci(record.get("ci_low"), record.get("ci_high")),
        "p": fmt_p(record.get("p_value")),
        "n": "" if record.get("n") is None else str(record["n"]),
        "notes": list(record.get("notes") or []),
    }


# --------------------------------------------------------------------------------------------
# The context
# --------------------------------------------------------------------------------------------


def make_context(g: "Gathered") -> ReportContext:
    """The report context of gathered inputs (see the module docstring)."""
    results_json = g.results.to_json()
    results = Results(results_json)
    if results.blinded != (g.variant == "blinded"):
        raise ValueError("the results' blinding does not match the report's variant")
    generated_at = g.generated_at.isoformat()
    provenance = _provenance(g, results_json, generated_at)
    document = g.document
    title = (
        f"Clinical study report (unblinded final analysis): {document.trial.short_title or g.trial_code}"
        if g.variant == "final"
        else f"Blinded progress report: {document.trial.short_title or g.trial_code}"
    )
    sections: dict[str, Any] = {
        "title_page": _title_page(g, provenance),
        "synopsis": _synopsis(g, results),
        "provenance": _provenance_section(g, provenance),
    }
    # Plain JSON values only: what the context holds must read back exactly from its JSON.
    plain_sections = json.loads(json.dumps(sections, allow_nan=False))
    plain_provenance = json.loads(json.dumps(provenance, allow_nan=False))
    return ReportContext(
        variant="final" if g.variant == "final" else "blinded",
        trial_code=g.trial_code,
        title=title,
        generated_at=generated_at,
        results_json=results_json,
        provenance=plain_provenance,
        sections=plain_sections,
    )


def _provenance(g: "Gathered", results_json: str, generated_at: str) -> dict[str, Any]:
    import hashlib

    plan = next(v for v in g.versions if v["version"] == g.plan_version)
    return {
        "protocol_version": g.plan_version,
        "protocol_sha256": plan["content_sha256"],
        "sap_locked_at": plan["locked_at"],
        "sap_sha256": g.sap_sha256,
        "database_locked_at": g.database_lock["locked_at"] if g.database_lock else None,
        "unblinded_at": g.unblinding["unblinded_at"] if g.unblinding else None,
        "data_snapshot_sha256": g.snapshot_sha256,
        "results_sha256": hashlib.sha256(results_json.encode("utf-8")).hexdigest(),
        "audit_head": dict(g.audit["head"]),
        "software": dict(g.software),
        "generated_at": generated_at,
    }


def _title_page(g: "Gathered", provenance: Mapping[str, Any]) -> dict[str, Any]:
    d = g.document
    return {
        "variant_label": "Final report (unblinded)" if g.variant == "final" else "Blinded progress report",
        "trial_title": " ".join(d.trial.title.split()),
        "short_title": d.trial.short_title,
        "registry_id": d.trial.registry_id,
        "sponsor": d.sponsor.name,
        "rows": [
            ["Trial", f"{g.trial_code} ({d.trial.registry_id})"],
            ["Sponsor", d.sponsor.name],
            ["Protocol version", str(provenance["protocol_version"])],
            ["Protocol SHA-256", provenance["protocol_sha256"]],
            ["Analysis plan locked", fmt_timestamp(provenance["sap_locked_at"])],
            ["Analysis plan SHA-256", provenance["sap_sha256"]],
            [
                "Database locked",
                fmt_timestamp(provenance["database_locked_at"])
                if provenance["database_locked_at"]
                else "not locked",
            ],
            [
                "Unblinded",
                fmt_timestamp(provenance["unblinded_at"]) if provenance["unblinded_at"] else "blinded",
            ],
            ["Data snapshot SHA-256", provenance["data_snapshot_sha256"]],
            ["Analysis results SHA-256", provenance["results_sha256"]],
            ["Generated", fmt_timestamp(provenance["generated_at"])],
        ],
        "software": ", ".join(f"{k} {v}" for k, v in provenance["software"].items()),
    }


def _synopsis(g: "Gathered", results: Results) -> dict[str, Any]:
    d = g.document
    primary = results.primary()
    estimand = d.estimand(d.sap.primary_analysis.estimand)
    endpoint = d.endpoint(estimand.endpoint)
    out: dict[str, Any] = {
        "design": (
            f"{_label(d.design.allocation).capitalize()}, {d.design.hypothesis} trial with "
            f"{len(d.arms)} arms at {len(d.sites)} sites."
        ),
        "arms": [{"code": a.code, "name": a.name} for a in d.arms],
        "primary_endpoint": endpoint.name,
        "primary_estimand": f"{estimand.code}: {estimand.name}",
        "primary": None,
    }
    if primary is not None:
        visit = d.visit(endpoint.visit)
        out["primary"] = {
            "comparison": f"{estimand.treatment.experimental} versus {estimand.treatment.control}",
            "visit": visit.name,
            "method": primary["method"],
            **result_cells(primary),
        }
    return out


def _provenance_section(g: "Gathered", provenance: Mapping[str, Any]) -> dict[str, Any]:
    audit = g.audit
    return {
        "hashes": [
            ["Protocol (version {})".format(provenance["protocol_version"]), provenance["protocol_sha256"]],
            ["Analysis plan (sap part of the protocol)", provenance["sap_sha256"]],
            ["Data snapshot", provenance["data_snapshot_sha256"]],
            ["Analysis results JSON", provenance["results_sha256"]],
        ],
        "software": [[k, v] for k, v in provenance["software"].items()],
        "audit_head": audit["head"],
        "verification": audit["verification"],
        "by_table_action": audit["by_table_action"],
        "database_lock": g.database_lock,
        "unblinding": g.unblinding,
    }


def _rows(frame: "pd.DataFrame", columns: Sequence[str]) -> list[list[Any]]:
    return [[row[c] for c in columns] for row in frame.to_dict("records")]


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))
