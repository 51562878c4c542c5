"""What the reports say: the sections in ICH E3 order, numbers that are those of the results
and of the trial's records, and nothing by arm in the blinded report."""

import hashlib
import json
import re
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from reports import build_context
from reports.context import fmt_ci, fmt_estimate, fmt_p
from reports.render import headings
from tests.reports.conftest import ARMS, CODE, ReportTrial
from trials.core.accounts import services as accounts
from trials.core.audit import services as audit

FINAL_CHAPTERS = [
    "Contents",
    "2 Synopsis",
    "9 Investigational plan",
    "10 Study participants",
    "11 Efficacy evaluation",
    "12 Safety evaluation",
    "16 Appendices",
]


def chapters(html: str) -> list[str]:
    return [h["text"] for h in headings(html) if h["level"] == 1]


class Tables(HTMLParser):
    """The header cells and body cells of every table of a given class."""

    def __init__(self, css_class: str) -> None:
        super().__init__(convert_charrefs=True)
        self.css_class = css_class
        self.depth = 0
        self.header: list[str] = []
        self.cells: list[str] = []
        self.cell: str | None = None
        self.in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            classes = (dict(attrs).get("class") or "").split()
            self.depth = self.depth + 1 if (self.depth or self.css_class in classes) else 0
        elif self.depth and tag in ("td", "th"):
            self.cell = ""
        elif self.depth and tag == "thead":
            self.in_head = True

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif tag in ("td", "th") and self.cell is not None:
            (self.header if self.in_head else self.cells).append(" ".join(self.cell.split()))
            self.cell = None
        elif tag == "thead":
            self.in_head = False


def tables(html: str, css_class: str) -> Tables:
    parser = Tables(css_class)
    parser.feed(html)
    return parser


def arm_level(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Results by arm or comparing arms, except descriptive statistics and CONSORT counts."""
    return [
        r
        for r in results["results"]
        if (r["arm"] or r["comparison"])
        and not r["analysis_id"].startswith(("DESCRIPTIVE.", "CONSORT.", "COMPLETENESS."))
    ]


def printed_numbers(results: dict[str, Any]) -> set[str]:
    """Every number of a results document formatted as the report prints estimates."""
    out = set()
    for r in results["results"]:
        values = [r["estimate"], r["ci_low"], r["ci_high"]]
        values += [v for v in (r.get("statistics") or {}).values() if isinstance(v, int | float)]
        out |= {fmt_estimate(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)}
    return out


def test_the_final_report_follows_ich_e3(report_trial: ReportTrial) -> None:
    html = report_trial.final.html
    assert chapters(html) == FINAL_CHAPTERS
    level2 = [h["text"] for h in headings(html) if h["level"] == 2]
    for expected in (
        "9.7 Statistical methods planned",
        "9.8 Changes in the conduct of the study or planned analyses",
        "10.1 Disposition of participants",
        "11.1 Data sets analysed",
        "11.2 Demographic and other baseline characteristics",
        "11.3 Engagement with the digital therapy",
        "11.4 Efficacy results by estimand",
        "11.5 Subgroups and secondary effects",
        "11.6 Multiplicity",
        "11.7 Missing data and sensitivity analyses",
        "12.1 Adverse events",
        "12.2 Serious adverse events",
        "12.3 PHQ-9 item 9 and other safety events",
    ):
        assert expected in level2
    assert [h for h in level2 if h.startswith("16.")][-2:] == [
        "16.5 Provenance and audit summary",
        "16.6 Signatures",
    ]
    # Every figure is inline SVG: CONSORT, attrition, LS means, Kaplan-Meier, forest, completeness.
    assert html.count("<svg") >= 10
    assert "<img" not in html


def test_every_estimand_s_mmrm_differences_are_printed_with_their_intervals(
    report_trial: ReportTrial,
) -> None:
    final = report_trial.final
    results = json.loads(final.context.results_json)
    mmrm = [r for r in results["results"] if ".MMRM." in r["analysis_id"] and r["comparison"]]
    assert len(mmrm) >= 20
    text = final.text
    for r in mmrm:
        assert fmt_ci(r["ci_low"], r["ci_high"]) in text, r["analysis_id"]
    hierarchy = [r for r in results["results"] if r["analysis_id"].startswith("HIERARCHY.")]
    multiplicity = next(p for p in final.pages if "11.6 Multiplicity" in p.text and "Adjusted p" in p.text)
    for r in hierarchy:
        assert fmt_p(r["p_value"]) in multiplicity.text


def test_the_consort_invariants_are_shown_satisfied(report_trial: ReportTrial) -> None:
    for rendered, checks in ((report_trial.final, 2 + 1 + 2 * len(ARMS)), (report_trial.blinded, 2)):
        parsed = tables(rendered.html, "checks")
        assert parsed.cells.count("satisfied") == checks
        assert "violated" not in rendered.text


def test_safety_counts_are_those_of_the_trial_s_records(report_trial: ReportTrial) -> None:
    with report_trial.engine.connect() as conn:
        item9 = conn.execute(
            text("SELECT count(*) FROM safety_event WHERE kind = 'item9_positive'")
        ).scalar_one()
        adverse = conn.execute(text("SELECT count(*) FROM adverse_event")).scalar_one()
    assert item9 > 0
    for rendered in (report_trial.blinded, report_trial.final):
        safety = rendered.context.sections["safety"]
        row = next(
            r for r in safety["item9"]["rows"] if r["kind"].startswith("PHQ-9 item 9 answered positively")
        )
        assert row["cells"]["events"][-1] == str(item9)
        listed = [
            r
            for r in rendered.context.sections["item9_listing"]["rows"]
            if "answered positively" in " ".join(r)
        ]
        assert len(listed) == item9
        any_ae = safety["overview"][0]
        assert any_ae[-1].endswith(f" / {adverse}") or safety["outside"] > 0
    assert len(report_trial.final.context.sections["listings"]["adverse_events"]) == adverse


def test_the_provenance_printed_is_that_of_the_context(report_trial: ReportTrial) -> None:
    for rendered in (report_trial.blinded, report_trial.final):
        p = rendered.context.provenance
        assert p["results_sha256"] == hashlib.sha256(rendered.context.results_json.encode()).hexdigest()
        assert p["data_snapshot_sha256"] == json.loads(rendered.context.results_json)["input_sha256"]
        squeezed = rendered.text.replace(" ", "")
        for key in ("protocol_sha256", "sap_sha256", "data_snapshot_sha256", "results_sha256"):
            assert p[key] in squeezed, key
        assert "verified" in rendered.text
    final = report_trial.final.context.provenance
    blinded = report_trial.blinded.context.provenance
    assert final["database_locked_at"] is not None
    assert final["unblinded_at"] is not None
    assert blinded["database_locked_at"] is None
    assert blinded["unblinded_at"] is None
    # The blinded snapshot hash leaves the arms out.
    assert final["data_snapshot_sha256"] != blinded["data_snapshot_sha256"]
    assert "final analysis per the SAP" in report_trial.final.text
    assert "all data queries closed" in report_trial.final.text


def test_the_blinded_report_prints_no_arm_level_efficacy_number(report_trial: ReportTrial) -> None:
    final_results = json.loads(report_trial.final.context.results_json)
    blinded = report_trial.blinded
    blinded_results = json.loads(blinded.context.results_json)
    assert blinded_results["blinded"] is True
    text = blinded.text
    forbidden = arm_level(final_results)
    assert len(forbidden) > 100
    # An interval is a pair of numbers: no pooled result prints the same pair by chance.
    for r in forbidden:
        if r["ci_low"] is not None and r["ci_high"] is not None:
            assert fmt_ci(r["ci_low"], r["ci_high"]) not in text, r["analysis_id"]
    # Estimates as printed (2 decimals), unless a pooled result of the blinded run prints the
    # same number.
    pooled = printed_numbers(blinded_results)
    # Numbers with 2 decimals, not parts of versions such as 0.15.0.
    printed = set(re.findall(r"(?<![\d.])-?\d+\.\d\d(?![\d.])", text))
    leaked = {fmt_estimate(r["estimate"]) for r in forbidden} & printed - pooled
    assert leaked == set()
    assert "LS mean" not in text
    assert "LS-mean" not in text
    # No result table of differences or ratios (the plan's own words may name them).
    headers = " ".join(tables(blinded.html, "results").header).lower()
    for word in ("ls mean", "ls-mean", "difference", "ratio", "nnt"):
        assert word not in headers


def test_no_arm_code_in_a_result_table_or_section_of_the_blinded_report(report_trial: ReportTrial) -> None:
    blinded = report_trial.blinded
    for css_class in ("results", "listing"):
        parsed = tables(blinded.html, css_class)
        assert parsed.cells
        for cell in parsed.header + parsed.cells:
            assert not set(re.findall(r"[A-Z]+", cell)) & set(ARMS), cell
    sections = {
        k: v for k, v in blinded.context.sections.items() if k not in ("plan", "synopsis", "title_page")
    }
    assert "engagement" not in sections
    assert "efficacy" not in sections
    dumped = json.dumps(sections)
    for arm in ARMS:
        assert not re.search(rf"\b{arm}\b", dumped), arm


def test_the_blinded_report_after_unblinding_is_still_pooled(report_trial: ReportTrial) -> None:
    with Session(report_trial.engine) as session:
        audit.set_actor(session, audit.Actor.system("system"))
        stella = accounts.load_principal(accounts.get_user("stella", session=session), session=session)
        context = build_context(CODE, session=session, by=stella, variant="blinded")
        session.rollback()
    assert json.loads(context.results_json)["blinded"] is True
    assert context.provenance["unblinded_at"] is not None
    sections = {k: v for k, v in context.sections.items() if k not in ("plan", "synopsis", "title_page")}
    dumped = json.dumps(sections)
    for arm in ARMS:
        assert not re.search(rf"\b{arm}\b", dumped), arm
    assert (
        context.provenance["data_snapshot_sha256"]
        == report_trial.blinded.context.provenance["data_snapshot_sha256"]
    )
