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
    estimable = _finite(record.get("estimate")) is not None
    return {
        "estimate": fmt_estimate(record.get("estimate")),
        "ci": fmt_ci(record.get("ci_low"), record.get("ci_high")),
        # A method without a test (a risk difference's interval) has no p-value to print.
        "p": fmt_p(record.get("p_value")) if record.get("p_value") is not None or not estimable else "",
        "n": "" if record.get("n") is None else str(record["n"]),
        "notes": list(record.get("notes") or []),
    }


# --------------------------------------------------------------------------------------------
# The context
# --------------------------------------------------------------------------------------------

#: Subject-level columns the blinded report may read: none is the arm or derived from it
#: (the safety and per-protocol flags and app use depend on the arm's intervention).
BLINDED_COLUMNS = (
    "subject",
    "site",
    "randomized_on",
    "age",
    "severity_stratum",
    "base_phq9",
    "base_gad7",
    "fasfl",
    "eos_status",
    "eos_on",
)
#: Relatedness to the app counted as related.
RELATED = ("possible", "probable", "related")
#: End-of-study kinds that are a discontinuation (leaving the trial early).
LEFT_TRIAL = ("withdrawal_by_subject", "withdrawal_by_investigator", "lost_to_follow_up")
#: What each time-to-event kind's curve shows.
SURVIVAL_LABELS = {
    "first_response": "Proportion without a response",
    "first_remission": "Proportion not in remission",
    "stopping_app_use": "Proportion still using the app",
    "withdrawal": "Proportion still in the trial",
}
SAFETY_KIND_TEXT = {
    "item9_positive": "PHQ-9 item 9 answered positively",
    "item9_missing": "PHQ-9 item 9 not answered",
    "deterioration": "Reliable deterioration of the PHQ-9 total",
}


class _Inputs:
    """What every section reads: the plan, the results, the frames (arm-free when blinded)."""

    def __init__(self, g: "Gathered", results: Results) -> None:
        self.g = g
        self.d = g.document
        self.results = results
        self.blinded = g.variant == "blinded"
        adsl = g.frames.adsl
        adtte = g.frames.adtte
        if self.blinded:
            # Nothing by arm: the arm, and what is derived from it, go before anything is built.
            adsl = adsl[[c for c in BLINDED_COLUMNS if c in adsl.columns]].copy()
            adtte = adtte.drop(columns=["arm"], errors="ignore")
        self.adsl = adsl.reset_index(drop=True)
        self.adtte = adtte
        self.raw = g.frames.raw
        self.arms = [a.code for a in self.d.arms]
        self.arm_names = {a.code: a.name for a in self.d.arms}
        self.visits = sorted(self.d.visits, key=lambda v: v.day)
        self.post_visits = [v for v in self.visits if v.day > 0]
        self.baseline = self.d.baseline_visit

    def arm_label(self, code: str) -> str:
        return f"{code} ({self.arm_names.get(code, code)})"

    def visit_name(self, code: str) -> str:
        return next((v.name for v in self.visits if v.code == code), code)

    def visit_day(self, code: str) -> int:
        return next((v.day for v in self.visits if v.code == code), 0)

    def arm_of(self) -> dict[str, str]:
        """Participant label -> arm (empty when blinded: the frames have no arm)."""
        if "arm" not in self.adsl.columns:
            return {}
        return {str(s): str(a) for s, a in zip(self.adsl["subject"], self.adsl["arm"], strict=True)}


def make_context(g: "Gathered") -> ReportContext:
    """The report context of gathered inputs (see the module docstring)."""
    results_json = g.results.to_json()
    results = Results(results_json)
    if results.blinded != (g.variant == "blinded"):
        raise ValueError("the results' blinding does not match the report's variant")
    x = _Inputs(g, results)
    generated_at = g.generated_at.isoformat()
    provenance = _provenance(g, results_json, generated_at)
    short = g.document.trial.short_title or g.trial_code
    title = (
        f"Clinical study report (final, unblinded): {short}"
        if g.variant == "final"
        else f"Blinded progress report: {short}"
    )
    sections: dict[str, Any] = {
        "title_page": _title_page(g, provenance),
        "synopsis": _synopsis(x),
        "plan": _plan(x),
        "participants": _participants(x),
        "datasets": _datasets(x),
        "baseline": _baseline(x),
        "completeness": _completeness(x),
        "safety": _safety(x),
        "provenance": _provenance_section(g, provenance),
    }
    if x.blinded:
        sections["enrolment"] = _enrolment(x)
        sections["pooled"] = _pooled_outcomes(x)
    else:
        sections["engagement"] = _engagement(x)
        sections["efficacy"] = _efficacy(x)
        sections["forest"] = _forest(x)
        sections["multiplicity"] = _multiplicity(x)
        sections["sensitivity"] = _sensitivity(x)
        sections["listings"] = _listings(x)
    sections["item9_listing"] = _item9_listing(x)
    # Plain JSON values only: what the context holds must read back exactly from its JSON.
    return ReportContext(
        variant="final" if g.variant == "final" else "blinded",
        trial_code=g.trial_code,
        title=title,
        generated_at=generated_at,
        results_json=results_json,
        provenance=json.loads(json.dumps(provenance, allow_nan=False)),
        sections=json.loads(json.dumps(sections, allow_nan=False)),
    )


# --------------------------------------------------------------------------------------------
# Title page, synopsis, provenance
# --------------------------------------------------------------------------------------------


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
    locked = provenance["database_locked_at"]
    unblinded = provenance["unblinded_at"]
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
            ["Database locked", fmt_timestamp(locked) if locked else "not locked"],
            ["Unblinded", fmt_timestamp(unblinded) if unblinded else "no (blinded)"],
            ["Data snapshot SHA-256", provenance["data_snapshot_sha256"]],
            ["Analysis results SHA-256", provenance["results_sha256"]],
            ["Generated", fmt_timestamp(provenance["generated_at"])],
        ],
        "software": ", ".join(f"{k} {v}" for k, v in provenance["software"].items()),
    }


def _synopsis(x: _Inputs) -> dict[str, Any]:
    d = x.d
    estimand = d.estimand(d.sap.primary_analysis.estimand)
    endpoint = d.endpoint(estimand.endpoint)
    randomized = x.results.get("CONSORT.RANDOMIZED")
    screened = x.results.get("CONSORT.SCREENED")
    dates = sorted(x.adsl["randomized_on"])
    out: dict[str, Any] = {
        "design": (
            f"{_label(d.design.allocation).capitalize()}, {d.design.hypothesis} trial of "
            f"{len(d.arms)} arms at {len(d.sites)} sites; randomization by permuted blocks"
            + (
                f", stratified by {', '.join(_label(s) for s in d.randomization.strata)}"
                if d.randomization.strata
                else ""
            )
            + "."
        ),
        "arms": [{"code": a.code, "name": a.name} for a in d.arms],
        "primary_endpoint": endpoint.name,
        "primary_estimand": f"{estimand.code}: {estimand.name}",
        "status": [
            ["Screened", "" if screened is None else str(screened["n"])],
            ["Randomized", "" if randomized is None else str(randomized["n"])],
            ["Randomization period", f"{dates[0].isoformat()} to {dates[-1].isoformat()}" if dates else ""],
        ],
        "primary": None,
        "hierarchy": [],
    }
    primary = x.results.primary()
    if primary is not None:
        out["primary"] = {
            "comparison": f"{estimand.treatment.experimental} versus {estimand.treatment.control}",
            "visit": x.visit_name(endpoint.visit),
            "method": primary["method"],
            **result_cells(primary),
        }
        out["hierarchy"] = _multiplicity(x)["rows"]
    return out


def _provenance_section(g: "Gathered", provenance: Mapping[str, Any]) -> dict[str, Any]:
    audit = g.audit
    return {
        "hashes": [
            [f"Protocol (version {provenance['protocol_version']})", provenance["protocol_sha256"]],
            ["Analysis plan (the protocol's sap part)", provenance["sap_sha256"]],
            ["Data snapshot (clinical content)", provenance["data_snapshot_sha256"]],
            ["Analysis results JSON", provenance["results_sha256"]],
        ],
        "software": [[k, v] for k, v in provenance["software"].items()],
        "audit_head": audit["head"],
        "verification": audit["verification"],
        "by_table_action": audit["by_table_action"],
        "database_lock": None
        if g.database_lock is None
        else {**g.database_lock, "locked_at": fmt_timestamp(g.database_lock["locked_at"])},
        "unblinding": None
        if g.unblinding is None
        else {
            **g.unblinding,
            "unblinded_at": fmt_timestamp(g.unblinding["unblinded_at"]),
            "database_locked_at": fmt_timestamp(g.unblinding["database_locked_at"]),
        },
    }


# --------------------------------------------------------------------------------------------
# 9 Investigational plan and the analysis plan
# --------------------------------------------------------------------------------------------


def _plan(x: _Inputs) -> dict[str, Any]:
    """The protocol version the analyses follow, as written, and every version with its lock."""
    from protocols.sap_spec import STOP_APP_GAP_DAYS

    d = x.d
    sap = d.sap
    rnd = d.randomization
    missing = sap.missing_data
    mi = missing.multiple_imputation
    return {
        "version": x.g.plan_version,
        "design": [
            ["Allocation", _label(d.design.allocation)],
            ["Hypothesis", d.design.hypothesis],
            ["Phase", _label(d.design.phase) if d.design.phase else "not given"],
            [
                "Randomization",
                f"{_label(rnd.method)}, block sizes {', '.join(str(b) for b in rnd.block_sizes)}",
            ],
            ["Strata", ", ".join(_label(s) for s in rnd.strata) or "none"],
            [
                "Severity cut points",
                (f"{rnd.severity_instrument} {', '.join(str(c) for c in rnd.severity_cut_points)}")
                if rnd.severity_cut_points
                else "none",
            ],
            ["Blinded roles", ", ".join(_label(r) for r in d.blinding.blinded_roles) or "none"],
            ["Blinding", " ".join((d.blinding.description or "").split())],
        ],
        "sites": [[s.code, s.name, s.country] for s in d.sites],
        "arms": [
            {
                "code": a.code,
                "name": a.name,
                "kind": _label(a.kind),
                "ratio": a.allocation_ratio,
                "app": f"{a.app_name} {a.app_version}" if a.app_name else "no app",
                "description": " ".join(a.description.split()),
            }
            for a in d.arms
        ],
        "eligibility": {
            "age": f"{d.eligibility.age.min} to {_or(d.eligibility.age.max, 'any')} years",
            "phq9": (f"{d.eligibility.screening_phq9.min} to {_or(d.eligibility.screening_phq9.max, 27)}"),
            "inclusion": [" ".join(c.split()) for c in d.eligibility.inclusion],
            "exclusion": [" ".join(c.split()) for c in d.eligibility.exclusion],
        },
        "visits": [
            [v.code, v.name, v.day, f"{v.window[0]} to {v.window[1]}", ", ".join(v.instruments)]
            for v in x.visits
        ],
        "endpoints": [
            [
                e.code,
                e.name,
                _label(e.type),
                _label(e.level),
                e.instrument or _label(e.event or ""),
                x.visit_name(e.visit),
            ]
            for e in d.endpoints
        ],
        "populations": [
            [p.code, p.name, _label(p.kind), " ".join(p.definition.split())] for p in d.populations
        ],
        "intercurrent_events": [[e.code, " ".join(e.description.split())] for e in d.intercurrent_events],
        "estimands": [
            {
                "code": e.code,
                "name": e.name,
                "endpoint": f"{e.endpoint}: {d.endpoint(e.endpoint).name}",
                "treatment": _versus(x, e.treatment.experimental, e.treatment.control),
                "population": e.population,
                "variable": " ".join(e.variable.split()),
                "strategies": [
                    [s.event, _label(s.strategy), " ".join((s.rationale or "").split())]
                    for s in e.intercurrent_events
                ],
                "summary": f"{_label(e.population_level_summary.measure)}: "
                + " ".join(e.population_level_summary.description.split()),
                "primary": e.code == sap.primary_analysis.estimand,
            }
            for e in _estimand_order(x)
        ],
        "methods": [
            ["Significance level", f"{sap.alpha:g}, {_label(sap.sidedness)}"],
            [
                "Primary analysis",
                f"{sap.primary_analysis.model.upper()} of change from baseline at every post-baseline visit; "
                f"{sap.primary_analysis.covariance} covariance; {sap.primary_analysis.estimation.upper()}; "
                f"{_label(sap.primary_analysis.df_method)} degrees of freedom; covariates "
                f"{', '.join(_label(c) for c in sap.primary_analysis.covariates)} (arm, visit and arm by "
                f"visit always in the model); estimand {sap.primary_analysis.estimand}",
            ],
            *[
                [
                    f"Supportive analysis {s.code}",
                    f"{s.method.upper()} of change at the endpoint visit, estimand {s.estimand}; covariates "
                    f"{', '.join(_label(c) for c in s.covariates)}",
                ]
                for s in sap.supportive_analyses
            ],
            ["Missing data", f"{missing.primary_assumption.upper()} (the MMRM's likelihood)"],
            [
                "Multiple imputation",
                f"{mi.imputations} imputations under {mi.assumption.upper()}, seed {mi.seed}"
                if mi
                else "not planned",
            ],
            [
                "Tipping point",
                (
                    "shifts of "
                    + ", ".join(f"{delta:g}" for delta in missing.tipping_point.deltas)
                    + " points added to imputed values of the experimental arm"
                )
                if missing.tipping_point
                else "not planned",
            ],
            ["Sensitivity without prorating", "yes" if missing.without_prorating else "no"],
            [
                "Prorating",
                (
                    "; ".join(
                        f"{code}: at least {rule.min_items_answered} items answered"
                        + (
                            f", items {', '.join(str(i) for i in rule.required_items)} required"
                            if rule.required_items
                            else ""
                        )
                        for code, rule in sap.prorating.rules.items()
                    )
                    + "; total = round half up of the mean item score times the number of items"
                )
                if sap.prorating.enabled
                else "not used",
            ],
            [
                "Visit windowing",
                f"{_label(sap.visit_windowing.rule)}, ties to the {sap.visit_windowing.tie_break} assessment",
            ],
            [
                "Response and remission",
                f"response: reduction of at least {sap.definitions.response.min_reduction_percent:g}% from "
                "baseline; remission: "
                + ", ".join(f"{k} below {v}" for k, v in sap.definitions.remission_below.items()),
            ],
            [
                "Minimal clinically important difference",
                ", ".join(f"{k} {v:g} points" for k, v in sap.definitions.mcid.items()),
            ],
            [
                "Engagement",
                "a day of use is a day with at least one app session; stopping use is "
                f"{STOP_APP_GAP_DAYS} days without use before the end of the treatment period",
            ],
            [
                "Safety",
                f"PHQ-9 item 9 follow-up within {d.safety.item9_followup_hours} hours; deterioration alert "
                f"at an increase of {d.safety.deterioration_threshold} PHQ-9 points",
            ],
        ],
        "multiplicity": {
            "procedure": _label(sap.testing_hierarchy.procedure),
            "endpoints": [
                [i, code, d.endpoint(code).name]
                for i, code in enumerate(sap.testing_hierarchy.endpoints, start=1)
            ],
        },
        "versions": [
            {
                "version": v["version"],
                "status": v["status"],
                "content_sha256": v["content_sha256"],
                "created": f"{fmt_timestamp(v['created_at'])} by {v['created_by']}",
                "locked_at": fmt_timestamp(v["locked_at"]),
                "signature": None
                if v["signature"] is None
                else (
                    f"{v['signature']['printed_name']} ({v['signature']['username']}), "
                    f"{fmt_timestamp(v['signature']['signed_at'])}, {v['signature']['meaning']}"
                ),
                "amendment_reason": v["amendment_reason"] or ("registration" if v["version"] == 1 else ""),
                "used": v["version"] == x.g.plan_version,
            }
            for v in x.g.versions
        ],
    }


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _versus(x: _Inputs, experimental: str, control: str) -> str:
    return f"{x.arm_label(experimental)} versus {x.arm_label(control)}"


def _estimand_order(x: _Inputs) -> list[Any]:
    """The primary estimand first, then the others in the protocol's order."""
    primary = x.d.sap.primary_analysis.estimand
    return sorted(x.d.estimands, key=lambda e: e.code != primary)


# --------------------------------------------------------------------------------------------
# 10 Participants: disposition and the CONSORT diagram
# --------------------------------------------------------------------------------------------


def _reason_text(x: _Inputs, rule: str) -> str:
    e = x.d.eligibility
    texts = {
        "age": f"Age outside {e.age.min} to {e.age.max if e.age.max is not None else 'any'} years",
        "screening_phq9": (
            f"Screening PHQ-9 outside {e.screening_phq9.min} to "
            f"{e.screening_phq9.max if e.screening_phq9.max is not None else 27}"
        ),
        "inclusion": "An inclusion criterion not met",
        "exclusion": "An exclusion criterion present",
    }
    return texts.get(rule, _label(rule))


def _kind_text(kind: str) -> str:
    from trials.events.terms import KIND_TEXT

    text = KIND_TEXT.get(kind, _label(kind))
    return text[:1].upper() + text[1:]


def _count(record: Mapping[str, Any] | None) -> int | None:
    return None if record is None or record.get("n") is None else int(record["n"])


def _participants(x: _Inputs) -> dict[str, Any]:
    """The CONSORT counts of the results, their invariants evaluated, and the diagram."""
    from reports import figures

    r = x.results
    screened = _count(r.get("CONSORT.SCREENED"))
    excluded = _count(r.get("CONSORT.EXCLUDED"))
    not_eligible = _count(r.get("CONSORT.NOT_ELIGIBLE"))
    declined = _count(r.get("CONSORT.DECLINED"))
    randomized = _count(r.get("CONSORT.RANDOMIZED")) or 0
    reasons_of = (r.get("CONSORT.NOT_ELIGIBLE") or {}).get("statistics", {}).get("reasons", {})
    reasons = [[_reason_text(x, k), int(v)] for k, v in sorted(reasons_of.items())]
    arms: list[dict[str, Any]] = []
    for arm in [] if x.blinded else x.arms:
        counts = {
            stage: _count(r.get(f"CONSORT.{stage}.{arm}"))
            for stage in (
                "ALLOCATED",
                "RECEIVED",
                "NOT_RECEIVED",
                "LOST_TO_FOLLOW_UP",
                "DISCONTINUED",
                "ANALYSED",
                "EXCLUDED_FROM_ANALYSIS",
            )
        }
        if counts["ALLOCATED"] is None:
            continue
        kinds = (r.get(f"CONSORT.DISCONTINUED.{arm}") or {}).get("statistics", {}).get("reasons", {})
        arms.append(
            {
                "label": x.arm_label(arm),
                "allocated": counts["ALLOCATED"],
                "received": counts["RECEIVED"],
                "not_received": counts["NOT_RECEIVED"],
                "lost": counts["LOST_TO_FOLLOW_UP"],
                "discontinued": counts["DISCONTINUED"],
                "discontinued_reasons": [[_kind_text(k), int(v)] for k, v in sorted(kinds.items())],
                "analysed": counts["ANALYSED"],
                "excluded_from_analysis": counts["EXCLUDED_FROM_ANALYSIS"],
            }
        )
    lost = _count(r.get("CONSORT.LOST_TO_FOLLOW_UP")) or 0
    discontinued = _count(r.get("CONSORT.DISCONTINUED")) or 0
    analysed = int((x.adsl["fasfl"] == "Y").sum()) if "fasfl" in x.adsl.columns else None
    flow = {
        "screened": screened,
        "excluded": excluded,
        "not_eligible": not_eligible,
        "reasons": reasons,
        "declined": declined,
        "randomized": randomized,
        "arms": arms,
        "pooled": {"lost": lost, "discontinued": discontinued, "analysed": analysed} if x.blinded else None,
    }
    checks = []
    if screened is not None and excluded is not None:
        checks.append(
            [
                "assessed = excluded + randomized",
                f"{screened} = {excluded} + {randomized}",
                screened == excluded + randomized,
            ]
        )
    if excluded is not None and not_eligible is not None and declined is not None:
        checks.append(
            [
                "excluded = not eligible + declined",
                f"{excluded} = {not_eligible} + {declined}",
                excluded == not_eligible + declined,
            ]
        )
    if arms:
        allocated = [a["allocated"] for a in arms]
        checks.append(
            [
                "randomized = sum of allocated",
                f"{randomized} = {' + '.join(str(a) for a in allocated)}",
                randomized == sum(allocated),
            ]
        )
        for a in arms:
            checks.append(
                [
                    f"allocated = received + not received ({a['label']})",
                    f"{a['allocated']} = {a['received']} + {a['not_received']}",
                    a["allocated"] == a["received"] + a["not_received"],
                ]
            )
            checks.append(
                [
                    f"analysed + excluded from analysis = allocated ({a['label']})",
                    f"{a['analysed']} + {a['excluded_from_analysis']} = {a['allocated']}",
                    a["allocated"] == a["analysed"] + a["excluded_from_analysis"],
                ]
            )
    # The end of study of every randomized participant (the discontinuations by kind).
    status = x.adsl["eos_status"].astype(str)
    kinds = [*LEFT_TRIAL, "completed", "ongoing"]
    columns = ["Total"] if x.blinded else [*x.arms, "Total"]
    disposition = []
    for kind in kinds:
        cells = []
        for column in columns:
            mine = status if column == "Total" else status[x.adsl["arm"] == column]
            cells.append(fmt_count_pct(int((mine == kind).sum()), len(mine)))
        disposition.append(
            [_kind_text(kind) if kind != "ongoing" else "Ongoing (no end of study recorded)", *cells]
        )
    return {
        "flow": flow,
        "diagram": figures.consort_diagram(flow),  # type: ignore[arg-type]
        "checks": checks,
        "all_hold": all(c[2] for c in checks),
        "reasons": reasons,
        "disposition_columns": columns,
        "disposition": disposition,
        "notes": list((r.get("CONSORT.SCREENED") or {}).get("notes") or []),
    }


# --------------------------------------------------------------------------------------------
# 11.1-11.2 Data sets analysed and baseline characteristics
# --------------------------------------------------------------------------------------------


def _datasets(x: _Inputs) -> dict[str, Any]:
    """Participants in each analysis population (the ADSL flags), by arm unless blinded."""
    flags = {"full_analysis": "fasfl", "per_protocol": "pprotfl", "safety": "saffl"}
    columns = ["Total"] if x.blinded else [*x.arms, "Total"]
    rows = []
    for population in x.d.populations:
        flag = flags[population.kind]
        if flag not in x.adsl.columns:
            continue  # derived from the arm: not shown while blinded
        cells = []
        for column in columns:
            mine = x.adsl if column == "Total" else x.adsl[x.adsl["arm"] == column]
            cells.append(fmt_count_pct(int((mine[flag] == "Y").sum()), len(mine)))
        rows.append([f"{population.code}: {population.name}", *cells])
    return {"columns": columns, "rows": rows}


def _summary(values: "pd.Series[Any]") -> tuple[str, str]:
    """``mean (SD)`` and ``median [min, max]`` of the non-missing values, to 1 decimal."""
    import pandas as pd

    v = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    if v.empty:
        return "", ""
    sd = v.std(ddof=1) if len(v) > 1 else float("nan")
    return (
        f"{fmt_number(v.mean())} ({fmt_number(sd)})",
        f"{fmt_number(v.median())} [{fmt_number(v.min())}, {fmt_number(v.max())}]",
    )


def _baseline(x: _Inputs) -> dict[str, Any]:
    """Baseline table of the full analysis set by arm (pooled when blinded).

    Age, site and severity stratum are counted from the subject-level table; the baseline
    PHQ-9 and GAD-7 are the descriptive results of the analysis plan (mean, SD, n at the
    baseline visit).
    """
    people = x.adsl[x.adsl["fasfl"] == "Y"] if "fasfl" in x.adsl.columns else x.adsl
    columns = ["Total"] if x.blinded else [*x.arms, "Total"]
    groups = {c: people if c == "Total" else people[people["arm"] == c] for c in columns}
    rows: list[list[Any]] = [["Participants, n", *[str(len(groups[c])) for c in columns]]]
    means = [_summary(groups[c]["age"]) for c in columns]
    rows.append(["Age (years), mean (SD)", *[m[0] for m in means]])
    rows.append(["Age (years), median [min, max]", *[m[1] for m in means]])
    rows.append(["Site, n (%)", *["" for _ in columns]])
    for site in sorted(set(people["site"])):
        rows.append(
            [
                f"  {site}",
                *[fmt_count_pct(int((groups[c]["site"] == site).sum()), len(groups[c])) for c in columns],
            ]
        )
    if people["severity_stratum"].notna().any():
        rows.append(["Baseline severity stratum, n (%)", *["" for _ in columns]])
        for level in sorted(set(people["severity_stratum"].dropna())):
            rows.append(
                [
                    f"  {level}",
                    *[
                        fmt_count_pct(int((groups[c]["severity_stratum"] == level).sum()), len(groups[c]))
                        for c in columns
                    ],
                ]
            )
    for paramcd, name in (("PHQ9TOT", "PHQ-9"), ("GAD7TOT", "GAD-7")):
        cells = []
        for c in columns:
            record = x.results.get(
                f"DESCRIPTIVE.{paramcd}.AVAL.{'ALL' if c == 'Total' else c}.{x.baseline.code}"
            )
            if record is None:
                cells.append("")
                continue
            stats = record.get("statistics") or {}
            cells.append(
                f"{fmt_number(record['estimate'])} ({fmt_number(stats.get('sd'))}), n = {record['n']}"
            )
        if any(cells):
            rows.append([f"Baseline {name} total, mean (SD)", *cells])
    return {"columns": columns, "rows": rows}


def _completeness(x: _Inputs) -> dict[str, Any]:
    """Analysed values by visit: pooled (the COMPLETENESS results) and, unblinded, by arm (the
    descriptive results' n and number missing)."""
    from reports import figures

    rows = []
    chart = []
    params = [("PHQ9TOT", "PHQ-9"), ("GAD7TOT", "GAD-7")]
    columns = ["All"] if x.blinded else [*x.arms, "All"]
    for paramcd, name in params:
        for visit in x.visits:
            pooled = x.results.get(f"COMPLETENESS.{paramcd}.{visit.code}")
            if pooled is None:
                continue
            stats = pooled.get("statistics") or {}
            observed, total = int(stats.get("observed", 0)), int(pooled["n"] or 0)
            chart.append({"visit": visit.code, "observed": observed, "total": total, "group": name})
            cells = []
            for column in columns[:-1]:
                record = x.results.get(f"DESCRIPTIVE.{paramcd}.AVAL.{column}.{visit.code}")
                if record is None:
                    cells.append("")
                    continue
                n = int(record["n"] or 0)
                cells.append(
                    fmt_count_pct(n, n + int((record.get("statistics") or {}).get("n_missing") or 0))
                )
            rows.append([name, visit.name, *cells, fmt_count_pct(observed, total)])
    return {
        "columns": columns,
        "rows": rows,
        "chart": figures.completeness_chart(chart) if chart else None,  # type: ignore[arg-type]
    }


def _enrolment(x: _Inputs) -> dict[str, Any]:
    """Randomizations by site over time (blinded progress report)."""
    from reports import figures

    series = []
    rows = []
    for site in sorted(set(x.adsl["site"])):
        dates = x.adsl.loc[x.adsl["site"] == site, "randomized_on"].value_counts().sort_index()
        series.append(
            {
                "label": site,
                "dates": [d.isoformat() for d in dates.index],
                "randomized": [int(n) for n in dates],
            }
        )
        rows.append([site, str(int(dates.sum())), dates.index[0].isoformat(), dates.index[-1].isoformat()])
    return {
        "rows": rows,
        "total": str(len(x.adsl)),
        "chart": figures.enrolment_chart(series) if series else None,  # type: ignore[arg-type]
    }


def _pooled_outcomes(x: _Inputs) -> dict[str, Any]:
    """Pooled descriptive statistics by visit and the pooled Kaplan-Meier summaries (blinded)."""
    from reports import figures

    tables = []
    for paramcd, name in (("PHQ9TOT", "PHQ-9"), ("GAD7TOT", "GAD-7")):
        rows = []
        for variable, what in (("AVAL", "total"), ("CHG", "change from baseline")):
            for visit in x.visits:
                record = x.results.get(f"DESCRIPTIVE.{paramcd}.{variable}.ALL.{visit.code}")
                if record is None:
                    continue
                st = record.get("statistics") or {}
                rows.append(
                    [
                        what,
                        visit.name,
                        str(record["n"]),
                        f"{fmt_number(record['estimate'])} ({fmt_number(st.get('sd'))})",
                        f"{fmt_number(st.get('median'))} "
                        f"[{fmt_number(st.get('q1'))}, {fmt_number(st.get('q3'))}]",
                        str(st.get("n_missing", "")),
                    ]
                )
        if rows:
            tables.append({"name": name, "rows": rows})
    survival = []
    for endpoint in x.d.endpoints:
        record = x.results.get(f"{endpoint.code}.KM_MEDIAN.ALL")
        if record is None:
            continue
        st = record.get("statistics") or {}
        day = x.visit_day(endpoint.visit)
        figure = None
        if st.get("curve"):
            figure = figures.km_plot(
                [{"label": "All", **st["curve"]}],  # type: ignore[typeddict-item]
                at_risk=_at_risk([("All", st.get("at_risk") or {})]),  # type: ignore[arg-type]
                xlabel="Days since randomization",
                ylabel=SURVIVAL_LABELS.get(endpoint.event or "", "Proportion without the event"),
                end_day=day,
            )
        survival.append(
            {
                "endpoint": f"{endpoint.code}: {endpoint.name}",
                "n": str(record["n"]),
                "events": str(st.get("n_events", "")),
                "median": st.get("text") or fmt_estimate(record["estimate"]),
                "figure": figure,
            }
        )
    return {"tables": tables, "survival": survival, "notes": list(x.results.data.get("notes") or [])}


def _at_risk(rows: Sequence[tuple[str, Mapping[str, int]]]) -> dict[str, Any] | None:
    """The number-at-risk table of Kaplan-Meier records (``statistics["at_risk"]``)."""
    if not rows or not rows[0][1]:
        return None
    times = sorted(rows[0][1], key=float)
    return {
        "times": [float(t) for t in times],
        "rows": [
            {"label": label, "counts": [int(counts.get(t, 0)) for t in times]} for label, counts in rows
        ],
    }


# --------------------------------------------------------------------------------------------
# 11.3 Engagement with the digital therapy
# --------------------------------------------------------------------------------------------


def _quartiles(values: "pd.Series[Any]") -> str:
    """``median [Q1, Q3]`` (quartiles by linear interpolation), to 1 decimal."""
    v = values.dropna().astype(float)
    if v.empty:
        return ""
    return f"{fmt_number(v.median())} [{fmt_number(v.quantile(0.25))}, {fmt_number(v.quantile(0.75))}]"


def _step_curve(curve: Any) -> dict[str, list[float]]:
    """A Kaplan-Meier curve as a step function from day 0 (survival 1)."""
    time = [float(t) for t in curve.time]
    survival = [float(s) for s in curve.survival]
    if not time or time[0] > 0:
        time, survival = [0.0, *time], [1.0, *survival]
    return {"time": time, "proportion": survival}


def _engagement(x: _Inputs) -> dict[str, Any]:
    """Use of the allocated app in the app arms, from the subject-level table (days with at
    least one session, sessions, minutes, modules) and from ADTTE: Kaplan-Meier estimates of
    still using the app (TTSTOPAP) and of still being in the trial (TTLEAVE), computed here
    with `analysis.survival.kaplan_meier` on the same snapshot."""
    import bisect

    from analysis.survival import event_from_cnsr, kaplan_meier
    from protocols.sap_spec import STOP_APP_GAP_DAYS
    from reports import figures

    app_arms = [a for a in x.d.arms if a.app_name]
    people = x.adsl[x.adsl["fasfl"] == "Y"]
    rows: list[list[str]] = []
    labels = {
        "n": "Participants (full analysis set)",
        "used": "Used the app at least once, n (%)",
        "days": "Days with use, median [Q1, Q3]",
        "sessions": "Sessions, median [Q1, Q3]",
        "minutes": "Minutes, median [Q1, Q3]",
        "modules": "Modules completed, median [Q1, Q3]",
        "stopped": "Stopped using the app (14 days without use), n (%)",
        "left": "Left the trial early, n (%)",
    }
    cells: dict[str, list[str]] = {k: [] for k in labels}
    series = []
    landmarks = []
    end_day = max(
        (x.visit_day(e.visit) for e in x.d.endpoints if e.type == "time_to_event"),
        default=x.post_visits[-1].day,
    )
    days = [v.day for v in x.post_visits if v.day <= end_day]
    for arm in app_arms:
        mine = people[people["arm"] == arm.code]
        n = len(mine)
        cells["n"].append(str(n))
        cells["used"].append(fmt_count_pct(int((mine["use_days"] > 0).sum()), n))
        cells["days"].append(_quartiles(mine["use_days"]))
        cells["sessions"].append(_quartiles(mine["use_sessions"]))
        cells["minutes"].append(_quartiles(mine["use_minutes"]))
        cells["modules"].append(_quartiles(mine["modules_completed"]))
        curves = {}
        for paramcd in ("TTSTOPAP", "TTLEAVE"):
            rows_tte = x.adtte[(x.adtte["paramcd"] == paramcd) & (x.adtte["arm"] == arm.code)]
            rows_tte = rows_tte[rows_tte["subject"].isin(mine["subject"])]
            if rows_tte.empty:
                continue
            events = event_from_cnsr(rows_tte["cnsr"])
            data = rows_tte.assign(time=rows_tte["aval"].astype(float), event=events.to_numpy())
            curves[paramcd] = kaplan_meier(data, time="time", event="event").curves[0]
            count = int(events.sum())
            cells["stopped" if paramcd == "TTSTOPAP" else "left"].append(fmt_count_pct(count, n))
        for key in ("stopped", "left"):
            if len(cells[key]) < len(cells["n"]):
                cells[key].append("")
        if "TTSTOPAP" in curves and "TTLEAVE" in curves:
            using, in_trial = _step_curve(curves["TTSTOPAP"]), _step_curve(curves["TTLEAVE"])
            series.append({"label": arm.code, "using": using, "in_trial": in_trial})

            def at(curve: dict[str, list[float]], day: float) -> str:
                k = bisect.bisect_right(curve["time"], day) - 1
                return fmt_count_pct(0, 0) if k < 0 else f"{100 * curve['proportion'][k]:.1f}%"

            landmarks.append([x.arm_label(arm.code), *[f"{at(using, d)} / {at(in_trial, d)}" for d in days]])
    for key, label in labels.items():
        rows.append([label, *cells[key]])
    return {
        "definition": (
            f"A day of use is a day with at least one app session (a day recorded without a session is not "
            f"use). Stopping use is the start of the first {STOP_APP_GAP_DAYS}-day period without use before "
            "the end of the treatment period; leaving the trial is withdrawal or loss to follow-up."
        ),
        "apps": [[x.arm_label(a.code), a.app_name, a.app_version] for a in app_arms],
        "columns": [x.arm_label(a.code) for a in app_arms],
        "rows": rows,
        "landmark_days": [f"Day {d}" for d in days],
        "landmarks": landmarks,
        "chart": figures.attrition_chart(series, days_label="Days since randomization", end_day=end_day)  # type: ignore[arg-type]
        if series
        else None,
    }


# --------------------------------------------------------------------------------------------
# 11.4 Efficacy by estimand
# --------------------------------------------------------------------------------------------


def _estimand_header(x: _Inputs, e: Any) -> dict[str, Any]:
    return {
        "code": e.code,
        "name": e.name,
        "endpoint": x.d.endpoint(e.endpoint).name,
        "population": e.population,
        "treatment": _versus(x, e.treatment.experimental, e.treatment.control),
        "strategies": "; ".join(f"{s.event}: {_label(s.strategy)}" for s in e.intercurrent_events),
        "summary": _label(e.population_level_summary.measure),
        "primary": e.code == x.d.sap.primary_analysis.estimand,
    }


def _notes(*records: Mapping[str, Any] | None) -> list[str]:
    return _unique(n for r in records if r for n in (r.get("notes") or []))


def _efficacy(x: _Inputs) -> list[dict[str, Any]]:
    out = []
    for e in _estimand_order(x):
        endpoint = x.d.endpoint(e.endpoint)
        item = {"header": _estimand_header(x, e), "type": endpoint.type, "id": f"estimand-{e.code.lower()}"}
        prefix = f"{endpoint.code}.{e.code}"
        exp, ctl = e.treatment.experimental, e.treatment.control
        if endpoint.type == "continuous_change":
            item.update(_continuous(x, prefix, exp, ctl, endpoint))
        elif endpoint.type in ("responder", "remission"):
            item.update(_binary(x, prefix, exp, ctl, endpoint))
        else:
            item.update(_time_to_event(x, prefix, exp, ctl, endpoint))
        out.append(item)
    # Endpoints without an estimand: the primary comparison under treatment policy.
    primary = x.d.estimand(x.d.sap.primary_analysis.estimand)
    with_estimand = {e.endpoint for e in x.d.estimands}
    for endpoint in x.d.endpoints:
        if endpoint.code in with_estimand:
            continue
        exp, ctl = primary.treatment.experimental, primary.treatment.control
        item = {
            "header": {
                "code": endpoint.code,
                "name": f"{endpoint.name} (no estimand: primary comparison and population, treatment policy)",
                "endpoint": endpoint.name,
                "population": primary.population,
                "treatment": f"{x.arm_label(exp)} versus {x.arm_label(ctl)}",
                "strategies": "treatment policy for every intercurrent event",
                "summary": "",
                "primary": False,
            },
            "type": endpoint.type,
            "id": f"endpoint-{endpoint.code.lower()}",
        }
        if endpoint.type == "continuous_change":
            item.update(_continuous(x, endpoint.code, exp, ctl, endpoint))
        elif endpoint.type in ("responder", "remission"):
            item.update(_binary(x, endpoint.code, exp, ctl, endpoint))
        else:
            item.update(_time_to_event(x, endpoint.code, exp, ctl, endpoint))
        out.append(item)
    return out


def _continuous(x: _Inputs, prefix: str, exp: str, ctl: str, endpoint: Any) -> dict[str, Any]:
    from reports import figures

    cmp = f"{exp}-{ctl}"
    instrument = endpoint.instrument or ""
    differences = []
    lsmeans = []
    series: dict[str, list[dict[str, Any]]] = {exp: [], ctl: []}
    notes: list[str] = []
    for visit in x.post_visits:
        diff = x.results.get(f"{prefix}.MMRM.{cmp}.{visit.code}")
        if diff is not None:
            cells = result_cells(diff)
            differences.append(
                {
                    "visit": visit.name,
                    "primary": bool(diff.get("primary")),
                    "endpoint_visit": visit.code == endpoint.visit,
                    **cells,
                }
            )
            notes += cells["notes"]
        row = [visit.name]
        for arm in (exp, ctl):
            m = x.results.get(f"{prefix}.MMRM.LSMEAN.{arm}.{visit.code}")
            row += [
                fmt_estimate(m["estimate"]) if m else NOT_ESTIMABLE,
                fmt_ci(m["ci_low"], m["ci_high"]) if m else fmt_ci(None, None),
            ]
            if m is not None:
                series[arm].append(
                    {
                        "visit": visit.code,
                        "day": float(visit.day),
                        "estimate": m["estimate"],
                        "ci_low": m["ci_low"],
                        "ci_high": m["ci_high"],
                    }
                )
        lsmeans.append(row)
    effect_sizes = []
    for method, name in (
        ("HEDGES_G", "Hedges' g (observed change)"),
        ("ADJUSTED_D", "MMRM difference / pooled baseline SD"),
    ):
        record = x.results.get(f"{prefix}.{method}.{cmp}.{endpoint.visit}")
        if record is not None:
            effect_sizes.append({"name": name, **result_cells(record)})
            notes += list(record.get("notes") or [])
    figure = None
    drawn = [{"label": a, "points": series[a]} for a in (exp, ctl) if series[a]]
    if drawn:
        figure = figures.lsmeans_by_visit(drawn, ylabel=f"LS-mean change in {instrument} total")  # type: ignore[arg-type]
    return {
        "differences": differences,
        "lsmean_arms": [x.arm_label(exp), x.arm_label(ctl)],
        "lsmeans": lsmeans,
        "effect_sizes": effect_sizes,
        "figure": figure,
        "notes": _unique(notes),
    }


def _binary(x: _Inputs, prefix: str, exp: str, ctl: str, endpoint: Any) -> dict[str, Any]:
    cmp = f"{exp}-{ctl}"
    visit = endpoint.visit
    rd = x.results.get(f"{prefix}.RD.{cmp}.{visit}")
    counts = (rd or {}).get("statistics") or {}
    proportions = []
    for arm, events, n in (
        (exp, counts.get("events"), counts.get("n_arm")),
        (ctl, counts.get("events_control"), counts.get("n_control")),
    ):
        p = x.results.get(f"{prefix}.PROPORTION.{arm}.{visit}")
        proportions.append(
            {
                "arm": x.arm_label(arm),
                "events": "" if events is None else f"{events} / {n}",
                "estimate": fmt_estimate(p["estimate"]) if p else NOT_ESTIMABLE,
                "ci": fmt_ci(p["ci_low"], p["ci_high"]) if p else fmt_ci(None, None),
            }
        )
    measures = []
    for code, name in (("RD", "Risk difference"), ("RR", "Risk ratio"), ("OR", "Odds ratio (adjusted)")):
        record = x.results.get(f"{prefix}.{code}.{cmp}.{visit}")
        measures.append({"name": name, **result_cells(record)})
    nnt = x.results.get(f"{prefix}.NNT.{cmp}.{visit}")
    nnt_text = ((nnt or {}).get("statistics") or {}).get("text") or NOT_ESTIMABLE
    return {
        "visit": x.visit_name(visit),
        "proportions": proportions,
        "measures": measures,
        "nnt": nnt_text,
        "notes": _notes(rd, nnt, *(x.results.get(f"{prefix}.{c}.{cmp}.{visit}") for c in ("RR", "OR"))),
    }


def _time_to_event(x: _Inputs, prefix: str, exp: str, ctl: str, endpoint: Any) -> dict[str, Any]:
    from reports import figures

    cmp = f"{exp}-{ctl}"
    end_day = x.visit_day(endpoint.visit)
    medians = []
    curves = []
    at_risk_rows = []
    for arm in x.arms:
        record = x.results.get(f"{prefix}.KM_MEDIAN.{arm}")
        if record is None:
            continue
        st = record.get("statistics") or {}
        medians.append(
            {
                "arm": x.arm_label(arm),
                "n": str(record["n"]),
                "events": str(st.get("n_events", "")),
                "median": st.get("text") or NOT_ESTIMABLE,
            }
        )
        if st.get("curve"):
            curves.append({"label": arm, **st["curve"]})
        at_risk_rows.append((arm, st.get("at_risk") or {}))
    at_risk = _at_risk(at_risk_rows)
    logrank = x.results.get(f"{prefix}.LOGRANK.{cmp}")
    cox = x.results.get(f"{prefix}.COX.{cmp}")
    ph = x.results.get(f"{prefix}.PH_TEST.{cmp}.GLOBAL")
    figure = None
    if curves:
        figure = figures.km_plot(
            curves,  # type: ignore[arg-type]
            at_risk=at_risk,  # type: ignore[arg-type]
            xlabel="Days since randomization",
            ylabel=SURVIVAL_LABELS.get(endpoint.event or "", "Proportion without the event"),
            end_day=end_day,
        )
    return {
        "end_day": end_day,
        "medians": medians,
        "at_risk": at_risk,
        "logrank": None
        if logrank is None
        else {
            "chisq": fmt_estimate(logrank["estimate"]),
            "df": fmt_number(logrank.get("df"), 0),
            "p": fmt_p(logrank["p_value"]),
        },
        "cox": None
        if cox is None
        else {**result_cells(cox), "direction": ((cox.get("statistics") or {}).get("direction") or "")},
        "ph": None if ph is None else {"chisq": fmt_estimate(ph["estimate"]), "p": fmt_p(ph["p_value"])},
        "figure": figure,
        "notes": _notes(logrank, cox, *(x.results.get(f"{prefix}.KM_MEDIAN.{a}") for a in x.arms)),
    }


# --------------------------------------------------------------------------------------------
# 11.5-11.7 Subgroups and secondary effects, multiplicity, missing data and sensitivity
# --------------------------------------------------------------------------------------------


def _forest_row(record: Mapping[str, Any] | None, label: str, group: str) -> dict[str, Any]:
    record = record or {}
    return {
        "label": label,
        "group": group,
        "estimate": record.get("estimate"),
        "ci_low": record.get("ci_low"),
        "ci_high": record.get("ci_high"),
        "n": record.get("n"),
    }


def _forest(x: _Inputs) -> dict[str, Any]:
    """Forest plots: the primary estimand's subgroups and every continuous estimand's
    difference at its endpoint visit (points); the ratios of the binary and time-to-event
    estimands (log scale)."""
    from reports import figures

    d = x.d
    primary = d.estimand(d.sap.primary_analysis.estimand)
    pe = d.endpoint(primary.endpoint)
    cmp = f"{primary.treatment.experimental}-{primary.treatment.control}"
    prefix = f"{pe.code}.{primary.code}"
    differences: list[dict[str, Any]] = []
    interactions = []
    names = {"site": "Site", "baseline_severity": "Baseline severity"}
    for name, title in names.items():
        levels = [
            r
            for r in x.results.records
            if r["analysis_id"].startswith(f"{prefix}.SUBGROUP.{name}.")
            and not r["analysis_id"].startswith(f"{prefix}.SUBGROUP.{name}.INTERACTION.")
        ]
        for r in levels:
            differences.append(
                _forest_row(r, str(r["parameters"].get("level")), f"{title} ({pe.instrument}, {cmp})")
            )
        interaction = x.results.get(f"{prefix}.SUBGROUP.{name}.INTERACTION.{cmp}.{pe.visit}")
        if interaction is not None:
            interactions.append(
                [
                    title,
                    fmt_estimate(interaction["estimate"]),
                    fmt_number(interaction.get("df"), 0),
                    fmt_p(interaction["p_value"]),
                ]
            )
    for e in _estimand_order(x):
        endpoint = d.endpoint(e.endpoint)
        if endpoint.type != "continuous_change":
            continue
        ecmp = f"{e.treatment.experimental}-{e.treatment.control}"
        record = x.results.get(f"{endpoint.code}.{e.code}.MMRM.{ecmp}.{endpoint.visit}")
        differences.append(
            _forest_row(
                record, f"{e.code} ({ecmp})", f"Estimands: difference in {endpoint.instrument} points"
            )
        )
    ratios = []
    for e in _estimand_order(x):
        endpoint = d.endpoint(e.endpoint)
        ecmp = f"{e.treatment.experimental}-{e.treatment.control}"
        if endpoint.type in ("responder", "remission"):
            for code, name in (("RR", "risk ratio"), ("OR", "odds ratio")):
                record = x.results.get(f"{endpoint.code}.{e.code}.{code}.{ecmp}.{endpoint.visit}")
                ratios.append(_forest_row(record, f"{e.code} {name}", "Binary endpoints"))
        elif endpoint.type == "time_to_event":
            record = x.results.get(f"{endpoint.code}.{e.code}.COX.{ecmp}")
            ratios.append(_forest_row(record, f"{e.code} hazard ratio", "Time to event"))
    # A ratio without a positive interval cannot be drawn on a log scale: it is listed only.
    drawable = [
        r
        for r in ratios
        if r["estimate"] is None
        or all(v is not None and v > 0 for v in (r["estimate"], r["ci_low"], r["ci_high"]))
    ]
    return {
        "differences": figures.forest_plot(
            differences,  # type: ignore[arg-type]
            xlabel="Difference in change from baseline (points)",
            favours=("favours experimental", "favours control"),
        )
        if differences
        else None,
        "ratios": figures.forest_plot(drawable, xlabel="Ratio (log scale)", null_value=1.0, log_scale=True)  # type: ignore[arg-type]
        if drawable
        else None,
        "rows": [
            [
                r["group"],
                r["label"],
                "" if r["n"] is None else str(r["n"]),
                fmt_estimate(r["estimate"]),
                fmt_ci(r["ci_low"], r["ci_high"]),
            ]
            for r in [*differences, *ratios]
        ],
        "interactions": interactions,
    }


def _multiplicity(x: _Inputs) -> dict[str, Any]:
    """The testing hierarchy's decisions (the HIERARCHY results)."""
    rows = []
    notes: list[str] = []
    for record in x.results.records:
        if not record["analysis_id"].startswith("HIERARCHY."):
            continue
        st = record.get("statistics") or {}
        source = str(st.get("source") or "")
        # The analysis that tests it, without the endpoint and estimand the row already names.
        parts = [p for p in source.split(".") if p not in (record["endpoint"], record.get("estimand"))]
        rows.append(
            [
                str(record["parameters"].get("position", "")),
                record["endpoint"] or "",
                f"{record.get('estimand') or ''} {' '.join(parts)}".strip(),
                fmt_p(st.get("raw_p")),
                fmt_p(record.get("p_value")),
                "yes" if st.get("tested") else "no",
                "yes" if st.get("rejected") else "no",
            ]
        )
        notes += [f"{record['endpoint']}: {n}" for n in record.get("notes") or []]
    procedure = _label(x.d.sap.testing_hierarchy.procedure)
    return {"procedure": procedure, "alpha": f"{x.d.sap.alpha:g}", "rows": rows, "notes": notes}


def _sensitivity(x: _Inputs) -> dict[str, Any]:
    """The primary estimand's sensitivity and supportive analyses, and the tipping point."""
    d = x.d
    primary = d.estimand(d.sap.primary_analysis.estimand)
    pe = d.endpoint(primary.endpoint)
    cmp = f"{primary.treatment.experimental}-{primary.treatment.control}"
    prefix = f"{pe.code}.{primary.code}"
    rows = []
    candidates = [
        ("Primary: MMRM, treatment policy", f"{prefix}.MMRM.{cmp}.{pe.visit}"),
        ("MMRM on totals without prorating", f"{prefix}.MMRM_UNPRORATED.{cmp}.{pe.visit}"),
        ("Multiple imputation under MAR, ANCOVA, Rubin's rules", f"{prefix}.MI.{cmp}.{pe.visit}"),
        *[
            (f"Supportive ANCOVA {s.code}", f"{prefix}.ANCOVA.{cmp}.{pe.visit}")
            for s in d.sap.supportive_analyses
            if s.estimand == primary.code
        ],
    ]
    for e in _estimand_order(x):
        if (
            e.code != primary.code
            and e.endpoint == pe.code
            and (e.treatment.experimental, e.treatment.control)
            == (
                primary.treatment.experimental,
                primary.treatment.control,
            )
        ):
            candidates.append((f"Estimand {e.code}: {e.name}", f"{pe.code}.{e.code}.MMRM.{cmp}.{pe.visit}"))
    notes: list[str] = []
    for name, aid in candidates:
        record = x.results.get(aid)
        if record is None:
            continue
        cells = result_cells(record)
        rows.append({"name": name, **cells})
        notes += cells["notes"]
    tipping = []
    for record in x.results.records:
        if record["analysis_id"].startswith(f"{prefix}.TIPPING.{cmp}."):
            delta = record["analysis_id"].rsplit(".D", 1)[-1]
            tipping.append({"delta": fmt_number(float(delta), 1), **result_cells(record)})
    point = x.results.get(f"{prefix}.TIPPING_POINT.{cmp}.{pe.visit}")
    if point is None:
        tipping_text = "The plan declares no tipping-point analysis."
    elif point.get("estimate") is not None:
        tipping_text = f"Tipping point: a shift of {fmt_number(point['estimate'], 1)} points."
    else:
        tipping_text = "; ".join(point.get("notes") or []) or "No tipping point within the grid."
    return {"rows": rows, "tipping": tipping, "tipping_text": tipping_text, "notes": _unique(notes)}


# --------------------------------------------------------------------------------------------
# 12 Safety
# --------------------------------------------------------------------------------------------


def _safety_columns(x: _Inputs) -> tuple[list[str], dict[str, "pd.DataFrame"]]:
    """The columns of the safety tables and the participants of each: the safety set by arm
    (all randomized participants, pooled, when blinded)."""
    if x.blinded:
        return ["Total"], {"Total": x.adsl}
    people = x.adsl[x.adsl["saffl"] == "Y"]
    groups = {arm: people[people["arm"] == arm] for arm in x.arms}
    groups["Total"] = people
    return [*x.arms, "Total"], groups


def _events_cell(events: "pd.DataFrame", people: "pd.DataFrame") -> str:
    """``participants (%) / events`` of a set of adverse events among `people`."""
    mine = events[events["subject"].isin(people["subject"])]
    return f"{fmt_count_pct(int(mine['subject'].nunique()), len(people))} / {len(mine)}"


def _safety(x: _Inputs) -> dict[str, Any]:
    """Adverse events (participants n (%) / events) and safety events, computed from the
    snapshot's adverse events and the trial's safety events: by arm in the safety set, or
    pooled over every randomized participant when blinded."""
    columns, groups = _safety_columns(x)
    ae = x.raw.adverse_events
    randomized = set(x.adsl["subject"])
    everyone = groups["Total"]
    outside = int((~ae["subject"].isin(everyone["subject"])).sum()) if not ae.empty else 0
    serious = ae[ae["serious"].astype(bool)] if not ae.empty else ae
    overview_sets = [
        ("Any adverse event", ae),
        ("Serious adverse event", serious),
        ("Severe adverse event", ae[ae["severity"] == "severe"] if not ae.empty else ae),
        (
            "Related to the app (possibly, probably or related)",
            ae[ae["relatedness"].isin(RELATED)] if not ae.empty else ae,
        ),
        ("Leading to withdrawal of the app", ae[ae["action"] == "app_withdrawn"] if not ae.empty else ae),
        ("Fatal outcome", ae[ae["outcome"] == "fatal"] if not ae.empty else ae),
    ]
    overview = [[name, *[_events_cell(events, groups[c]) for c in columns]] for name, events in overview_sets]

    def by_term(events: "pd.DataFrame") -> list[list[str]]:
        if events.empty:
            return []
        mine = events[events["subject"].isin(everyone["subject"])]
        order = mine.groupby("term")["subject"].nunique().sort_values(ascending=False, kind="stable")
        return [
            [str(term), *[_events_cell(mine[mine["term"] == term], groups[c]) for c in columns]]
            for term in order.index
        ]

    criteria = []
    if not serious.empty:
        from trials.events.terms import SERIOUS_CRITERIA

        for criterion in SERIOUS_CRITERIA:
            flagged = serious[serious[f"serious_{criterion}"].astype(bool)]
            if not flagged.empty:
                criteria.append(
                    [_label(criterion).capitalize(), *[_events_cell(flagged, groups[c]) for c in columns]]
                )
    return {
        "columns": columns,
        "denominators": [str(len(groups[c])) for c in columns],
        "population": "all randomized participants (pooled)" if x.blinded else "the safety set",
        "overview": overview,
        "terms": by_term(ae),
        "serious_terms": by_term(serious),
        "serious_criteria": criteria,
        "outside": outside,
        "not_randomized": int((~ae["subject"].isin(randomized)).sum()) if not ae.empty else 0,
        "item9": _safety_events(x),
    }


def _hours(start: Any, end: Any) -> float:
    return float((end - start).total_seconds()) / 3600


def _safety_events(x: _Inputs) -> dict[str, Any]:
    """Safety events by kind: events, participants, followed up, hours from the event to its
    follow-up (median and maximum), overdue (followed up after the deadline, or still open
    past it when the report was made), still open; by arm unless blinded."""
    import statistics

    events = x.g.safety_events
    arm_of = x.arm_of()
    columns = ["Total"] if x.blinded else [*x.arms, "Total"]
    if not x.blinded and not events.empty and any(arm_of.get(s) is None for s in events["subject"]):
        columns.insert(-1, "Not randomized")
    now = x.g.generated_at

    def column_of(subject: str) -> str:
        return arm_of.get(subject, "Not randomized")

    rows = []
    for kind in ("item9_positive", "item9_missing", "deterioration"):
        mine = events[events["kind"] == kind] if not events.empty else events
        if mine.empty and kind != "item9_positive":
            continue
        block: dict[str, list[str]] = {
            k: [] for k in ("events", "participants", "followed", "hours", "overdue", "open")
        }
        for column in columns:
            part = mine if column == "Total" else mine[[column_of(s) == column for s in mine["subject"]]]
            done = part[part["followed_up_at"].notna()]
            hours = [_hours(a, b) for a, b in zip(done["raised_at"], done["followed_up_at"], strict=True)]
            overdue = sum(
                1
                for due, followed in zip(part["due_at"], part["followed_up_at"], strict=True)
                if (followed is not None and followed == followed and followed > due)
                or ((followed is None or followed != followed) and now > due)
            )
            block["events"].append(str(len(part)))
            block["participants"].append(str(part["subject"].nunique()))
            block["followed"].append(str(len(done)))
            block["hours"].append(
                f"{fmt_number(statistics.median(hours))} / {fmt_number(max(hours))}" if hours else "-"
            )
            block["overdue"].append(str(overdue))
            block["open"].append(str(int((part["status"] == "open").sum())))
        rows.append({"kind": SAFETY_KIND_TEXT.get(kind, _label(kind)), "cells": block})
    return {
        "columns": columns,
        "rows": rows,
        "deadline_hours": x.d.safety.item9_followup_hours,
    }


# --------------------------------------------------------------------------------------------
# 16 Listings (by participant label, never a direct identifier)
# --------------------------------------------------------------------------------------------


def _listings(x: _Inputs) -> dict[str, Any]:
    """Discontinued participants, adverse events and serious adverse events (final report)."""
    arm_of = x.arm_of()
    randomized_on = dict(zip(x.adsl["subject"], x.adsl["randomized_on"], strict=True))

    def day(subject: str, when: Any) -> str:
        start = randomized_on.get(subject)
        return "" if start is None or when is None else str((when - start).days)

    left = x.adsl[x.adsl["eos_status"].isin(LEFT_TRIAL)].sort_values(["subject"])
    discontinued = [
        [
            str(r["subject"]),
            str(r["arm"]),
            str(r["site"]),
            _kind_text(str(r["eos_status"])),
            r["eos_on"].isoformat(),
            day(r["subject"], r["eos_on"]),
        ]
        for r in left.to_dict("records")
    ]
    ae = x.raw.adverse_events.sort_values(["subject", "onset_date", "term"], kind="stable")
    events = []
    serious = []
    from trials.events.terms import SERIOUS_CRITERIA

    for r in ae.to_dict("records"):
        subject = str(r["subject"])
        end = r["end_date"]
        has_end = end is not None and end == end
        events.append(
            [
                subject,
                arm_of.get(subject, "not randomized"),
                str(r["term"]),
                f"{r['onset_date'].isoformat()} (day {day(subject, r['onset_date'])})",
                end.isoformat() if has_end else "ongoing",
                "yes" if r["serious"] else "no",
                str(r["severity"]),
                _label(str(r["relatedness"])),
                _label(str(r["action"])),
                _label(str(r["outcome"])),
            ]
        )
        if r["serious"]:
            serious.append(
                [
                    subject,
                    arm_of.get(subject, "not randomized"),
                    str(r["term"]),
                    r["onset_date"].isoformat(),
                    ", ".join(_label(c) for c in SERIOUS_CRITERIA if r[f"serious_{c}"]),
                    _label(str(r["outcome"])),
                ]
            )
    return {"discontinued": discontinued, "adverse_events": events, "serious": serious}


def _item9_listing(x: _Inputs) -> dict[str, Any]:
    """Every safety event with its follow-up (by arm in the final report only)."""
    arm_of = x.arm_of()
    rows = []
    now = x.g.generated_at
    for r in x.g.safety_events.to_dict("records"):
        followed = r["followed_up_at"]
        has_followed = followed is not None and followed == followed
        overdue = (has_followed and followed > r["due_at"]) or (not has_followed and now > r["due_at"])
        row = [
            str(r["subject"]),
            *([] if x.blinded else [arm_of.get(str(r["subject"]), "not randomized")]),
            str(r["site"]),
            SAFETY_KIND_TEXT.get(str(r["kind"]), _label(str(r["kind"]))),
            "" if r["item9"] is None or r["item9"] != r["item9"] else str(int(r["item9"])),
            fmt_timestamp(r["raised_at"].isoformat()),
            fmt_timestamp(followed.isoformat()) if has_followed else "open",
            fmt_number(_hours(r["raised_at"], followed)) if has_followed else "",
            "yes" if overdue else "no",
        ]
        rows.append(row)
    return {"with_arm": not x.blinded, "rows": rows}


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))
