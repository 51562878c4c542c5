"""A stored report's analysis results as its web page shows them, read from the report's stored
context (never computed again): one table per pre-specified analysis and the summaries the
results document holds, numbers formatted as the report prints them (`reports.context`).

Every record of the results document lands in exactly one table, in the document's order within
it: each estimand's analyses (the primary estimand first, as the plan lists them); an endpoint
without an estimand; the primary estimand's sensitivity and supportive analyses; subgroups; the
testing hierarchy; descriptive statistics and completeness by visit; the CONSORT counts; and
anything else under "Other results". The safety tables are the report context's (the results
document holds no safety analysis).

A blinded report's results are pooled: a record by arm or comparing arms in one is refused, as
is a final report's document that says it is blinded (or the other way round).

Pure: no database and no Flask (a refusal is a `Conflict`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reports.build import ReportContext
from reports.context import Results, fmt_number, fmt_p, fmt_timestamp, result_cells
from trials.core.errors import Conflict

#: The primary estimand's sensitivity and supportive analyses (`analysis.sap`'s method parts).
SENSITIVITY = ("MMRM_UNPRORATED", "MI", "TIPPING", "TIPPING_POINT", "ANCOVA")
#: What each method part of an analysis id names.
KINDS = {
    "MMRM": "MMRM LS-mean difference",
    "LSMEAN": "LS mean",
    "ANCOVA": "ANCOVA LS-mean difference (supportive)",
    "HEDGES_G": "Hedges' g",
    "ADJUSTED_D": "model-adjusted difference / pooled baseline SD",
    "MI": "multiple imputation under MAR",
    "TIPPING": "delta-adjusted multiple imputation",
    "TIPPING_POINT": "tipping point",
    "MMRM_UNPRORATED": "MMRM without prorated totals",
    "SUBGROUP": "subgroup",
    "RD": "risk difference",
    "RR": "risk ratio",
    "OR": "odds ratio (adjusted)",
    "NNT": "number needed to treat",
    "PROPORTION": "proportion",
    "KM_MEDIAN": "Kaplan-Meier median",
    "KM_SURVIVAL": "Kaplan-Meier survival",
    "LOGRANK": "log-rank chi-square",
    "COX": "Cox hazard ratio",
    "PH_TEST": "proportional-hazards test",
    "HIERARCHY": "adjusted p-value",
    "DESCRIPTIVE": "mean",
    "COMPLETENESS": "proportion with a value",
    "CONSORT": "participants",
}
#: Kinds of result that have no confidence interval.
NO_INTERVAL = frozenset({"DESCRIPTIVE", "COMPLETENESS", "CONSORT", "HIERARCHY", "LOGRANK", "PH_TEST"})
VARIABLES = {"AVAL": "total", "CHG": "change from baseline"}


@dataclass(frozen=True)
class Row:
    """One result: its identity, a label made from it, and its numbers as printed (`estimate`
    etc.) and as stored (`raw`: estimate, ci_low, ci_high, p_value and n as Python writes
    them, empty when missing)."""

    analysis_id: str
    label: str
    group: str  # the arm, the comparison, or "pooled"
    population: str
    method: str
    estimate: str
    ci: str
    p: str
    n: str
    detail: str
    notes: list[str]
    primary: bool
    raw: dict[str, str]


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    role: str
    caption: list[str]
    rows: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class ResultsPage:
    blinded: bool
    title: str
    provenance: list[tuple[str, str]]
    alpha: str
    confidence: str
    notes: list[str]
    count: int
    tables: list[Table]
    safety: dict[str, Any]


def _parts(record: Mapping[str, Any]) -> list[str]:
    """The analysis id's parts after its endpoint and estimand."""
    parts = str(record["analysis_id"]).split(".")
    for known in (record.get("endpoint"), record.get("estimand")):
        if known and parts and parts[0] == known:
            parts = parts[1:]
    return parts


def kind_of(record: Mapping[str, Any]) -> str:
    """The method part of a record's analysis id (LS means of a model as LSMEAN)."""
    parts = _parts(record)
    if not parts:
        return ""
    if len(parts) > 1 and parts[1] == "LSMEAN":
        return "LSMEAN"
    return parts[0]


def _label(record: Mapping[str, Any], kind: str) -> str:
    params = record.get("parameters") or {}
    words = [KINDS.get(kind, kind.replace("_", " ").lower())]
    if kind in ("DESCRIPTIVE", "COMPLETENESS"):
        words.append(str(params.get("paramcd", "")))
        if params.get("variable"):
            words.append(VARIABLES.get(str(params["variable"]), str(params["variable"])))
    if kind == "CONSORT":
        words = [str(params.get("stage", "")).replace("_", " ")]
    if kind == "LSMEAN" and _parts(record)[0] == "ANCOVA":
        words = ["ANCOVA LS mean (supportive)"]
    if kind == "SUBGROUP":
        subgroup = str(params.get("subgroup", "")).replace("_", " ")
        words.append(f"{subgroup}: interaction" if "level" not in params else f"{subgroup} {params['level']}")
    if kind == "HIERARCHY":
        words.append(f"(position {params.get('position', '')})")
    if kind == "PH_TEST":
        words.append("(global)" if params.get("term") == "GLOBAL" else f"({params.get('term', '')})")
    if kind == "TIPPING":
        words.append(f"shift {str(record['analysis_id']).rsplit('.D', 1)[-1]}")
    if params.get("visit"):
        words.append(f"at {params['visit']}")
    elif params.get("day") is not None:
        words.append(f"at day {fmt_number(params['day'], 0)}")
    return " ".join(w for w in words if w)


def _detail(record: Mapping[str, Any], kind: str) -> str:
    """Further named numbers of a record worth a column: counts, medians' text, SD and quartiles."""
    st = record.get("statistics") or {}
    if kind == "HIERARCHY":
        return (
            f"raw p {fmt_p(st.get('raw_p'))}; {'tested' if st.get('tested') else 'not tested'}; "
            f"{'rejected' if st.get('rejected') else 'not rejected'}"
        )
    if kind == "DESCRIPTIVE":
        return (
            f"SD {fmt_number(st.get('sd'))}; median {fmt_number(st.get('median'))} "
            f"[{fmt_number(st.get('q1'))}, {fmt_number(st.get('q3'))}]; missing {st.get('n_missing', '')}"
        )
    if kind in ("KM_MEDIAN", "NNT") and st.get("text"):
        return f"{st['text']}" + (f"; events {st['n_events']}" if "n_events" in st else "")
    if kind == "PROPORTION" and "events" in (record.get("parameters") or {}):
        return f"events {record['parameters']['events']}"
    if kind == "COX" and st.get("direction"):
        return str(st["direction"])
    return ""


def row_of(record: Mapping[str, Any]) -> Row:
    kind = kind_of(record)
    cells = result_cells(record)
    if kind in NO_INTERVAL and record.get("ci_low") is None and record.get("ci_high") is None:
        cells["ci"] = ""  # a count, a mean or a test statistic has none: not "not estimable"
    if kind == "CONSORT":
        cells["estimate"] = fmt_number(record.get("estimate"), 0)
    if kind == "HIERARCHY":
        cells["estimate"] = fmt_p(record.get("estimate"))
    return Row(
        analysis_id=str(record["analysis_id"]),
        label=_label(record, kind),
        group=str(record.get("comparison") or record.get("arm") or "pooled"),
        population=str(record.get("population") or ""),
        method=str(record.get("method") or ""),
        estimate=cells["estimate"],
        ci=cells["ci"],
        p=cells["p"],
        n=cells["n"],
        detail=_detail(record, kind),
        notes=cells["notes"],
        primary=bool(record.get("primary")),
        raw={k: _raw(record.get(k)) for k in ("estimate", "ci_low", "ci_high", "p_value", "n")},
    )


def _raw(value: Any) -> str:
    return "" if value is None else repr(value)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _tables(results: Results, plan: Mapping[str, Any]) -> list[Table]:
    """The tables of the results document's records (see the module docstring)."""
    endpoints = {str(e[0]): e for e in plan.get("endpoints") or []}

    def endpoint_role(code: str | None) -> str:
        entry = endpoints.get(code or "")
        return str(entry[3]) if entry and len(entry) > 3 else ""

    def endpoint_name(code: str | None) -> str:
        entry = endpoints.get(code or "")
        return f"{code}: {entry[1]}" if entry else str(code or "")

    without = "pooled" if results.blinded else "no estimand"
    estimands = [e for e in plan.get("estimands") or [] if isinstance(e, Mapping)]
    primary = next((e for e in estimands if e.get("primary")), None)
    tables: dict[str, Table] = {}

    def role(e: Mapping[str, Any]) -> str:
        if e.get("primary"):
            return "primary estimand"
        if primary is not None and (e.get("endpoint"), e.get("treatment")) == (
            primary.get("endpoint"),
            primary.get("treatment"),
        ):
            return "supplementary estimand (sensitivity)"
        return f"{endpoint_role(_code(e))} endpoint".strip()

    for e in estimands:
        tables[f"estimand:{e['code']}"] = Table(
            id=f"estimand-{_slug(e['code'])}",
            title=f"{e['code']}: {e.get('name', '')}",
            role=role(e),
            caption=[
                f"Endpoint {e.get('endpoint', '')}",
                f"Population {e.get('population', '')}",
                f"Treatment {e.get('treatment', '')}",
                str(e.get("summary", "")),
            ],
        )
    fixed = {
        "sensitivity": Table(
            id="sensitivity",
            title="Sensitivity and supportive analyses of the primary estimand",
            role="sensitivity",
            caption=[
                f"Estimand {primary['code']}" if primary else "",
                "multiple imputation, tipping point, totals without prorating, supportive ANCOVA",
            ],
        ),
        "subgroup": Table(
            id="subgroups", title="Subgroups of the primary estimand", role="subgroup", caption=[]
        ),
        "hierarchy": Table(
            id="multiplicity",
            title="Testing hierarchy",
            role="multiplicity",
            caption=["estimate and p are the adjusted p-value"],
        ),
        "descriptive": Table(
            id="descriptive",
            title="Descriptive statistics and completeness by visit",
            role="summary",
            caption=[],
        ),
        "consort": Table(id="consort", title="Participant flow (CONSORT counts)", role="summary", caption=[]),
        "other": Table(id="other", title="Other results", role="", caption=[]),
    }
    for record in results.records:
        kind, family = kind_of(record), (_parts(record) or [""])[0]
        estimand, endpoint = record.get("estimand"), record.get("endpoint")
        if kind == "HIERARCHY":
            key = "hierarchy"
        elif kind in ("DESCRIPTIVE", "COMPLETENESS"):
            key = "descriptive"
        elif kind == "CONSORT":
            key = "consort"
        elif primary is not None and estimand == primary["code"] and family in SENSITIVITY:
            key = "sensitivity"
        elif primary is not None and estimand == primary["code"] and family == "SUBGROUP":
            key = "subgroup"
        elif estimand and f"estimand:{estimand}" in tables:
            key = f"estimand:{estimand}"
        elif endpoint and not estimand:
            key = f"endpoint:{endpoint}"
            if key not in tables:
                tables[key] = Table(
                    id=f"endpoint-{_slug(str(endpoint))}",
                    title=endpoint_name(endpoint),
                    role=f"{endpoint_role(endpoint)} endpoint ({without})".strip(),
                    caption=[f"Population {record.get('population') or ''}"],
                )
        else:
            key = "other"
        (tables.get(key) or fixed[key]).rows.append(row_of(record))
    ordered = [*tables.values(), *fixed.values()]
    return [t for t in ordered if t.rows]


def _code(estimand: Mapping[str, Any]) -> str:
    """The endpoint code of a plan estimand ("CODE: name")."""
    return str(estimand.get("endpoint", "")).split(":", 1)[0]


def results_page(context: ReportContext) -> ResultsPage:
    """The page of a stored report's context (`reports.services.stored_context`)."""
    results = Results(context.results_json)
    blinded = context.variant == "blinded"
    if results.blinded != blinded:
        raise Conflict(f"the analysis results of this {context.variant} report say blinded={results.blinded}")
    if blinded and any(r.get("arm") or r.get("comparison") for r in results.records):
        raise Conflict("the analysis results of this blinded report hold results by arm: not shown")
    sections = context.sections
    plan = sections.get("plan") or {}
    p = context.provenance
    software = p.get("software") or {}
    provenance = [
        ("Protocol version", str(p.get("protocol_version", ""))),
        ("Protocol SHA-256", str(p.get("protocol_sha256", ""))),
        ("Analysis plan locked", fmt_timestamp(p.get("sap_locked_at"))),
        ("Analysis plan SHA-256", str(p.get("sap_sha256", ""))),
        ("Database locked", fmt_timestamp(p.get("database_locked_at")) or "not locked"),
        ("Unblinded", fmt_timestamp(p.get("unblinded_at")) or "not unblinded"),
        ("Data snapshot SHA-256", str(p.get("data_snapshot_sha256", ""))),
        ("Analysis results SHA-256", str(p.get("results_sha256", ""))),
        ("Software", ", ".join(f"{k} {v}" for k, v in sorted(software.items()))),
    ]
    alpha = results.data.get("alpha")
    return ResultsPage(
        blinded=blinded,
        title=context.title,
        provenance=provenance,
        alpha=f"{alpha:g}" if isinstance(alpha, int | float) else "",
        confidence=f"{100 * (1 - alpha):.6g}%" if isinstance(alpha, int | float) else "",
        notes=[str(n) for n in results.data.get("notes") or []],
        count=len(results.records),
        tables=_tables(results, plan),
        safety=_safety(sections.get("safety") or {}),
    )


def _safety(safety: Mapping[str, Any]) -> dict[str, Any]:
    """The report's safety overview and safety events, as its context holds them."""
    columns: Sequence[str] = safety.get("columns") or []
    item9 = safety.get("item9") or {}
    measures = (
        ("events", "Events"),
        ("participants", "Participants"),
        ("followed", "Followed up"),
        ("overdue", "Overdue"),
        ("open", "Still open"),
    )
    events = [
        [f"{row.get('kind', '')}: {name}", *(row.get("cells") or {}).get(key, [])]
        for row in item9.get("rows") or []
        for key, name in measures
    ]
    return {
        "population": safety.get("population", ""),
        "columns": list(columns),
        "denominators": list(safety.get("denominators") or []),
        "overview": list(safety.get("overview") or []),
        "event_columns": list(item9.get("columns") or []),
        "events": events,
    }
