"""The report's figures: SVG text that inlines in HTML, keeps its text as text at 9 pt or more,
draws what it is given (labels, counts, censor ticks) and nothing else, and gives the same bytes
for the same input.

Each figure is drawn once per module from small hand-made inputs; the Kaplan-Meier, LS-mean
and CONSORT figures are also drawn from a real analysis-results document (a simulated trial of
the example protocol run through `analysis.sap.run_sap` and its JSON), as the report does.
"""

import io
import json
import logging
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from analysis.sap import run_sap
from protocols.sap_spec import sap_spec_of
from reports import figures
from tests.analysis.sap_trial import example_document, simulate

SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

FLOW: dict[str, Any] = {
    "screened": 420,
    "excluded": 180,
    "not_eligible": 150,
    "reasons": [
        ["Age outside 18-65 years", 40],
        ["Screening PHQ-9 below 10", 97],
        ["Exclusion criterion", 21],
    ],
    "declined": 30,
    "randomized": 240,
    "arms": [
        {
            "label": "CBT app",
            "allocated": 80,
            "received": 74,
            "not_received": 6,
            "lost": 9,
            "discontinued": 5,
            "discontinued_reasons": [["withdrawal by participant", 4], ["withdrawal by investigator", 1]],
            "analysed": 78,
            "excluded_from_analysis": 2,
        },
        {
            "label": "Attention control",
            "allocated": 81,
            "received": 80,
            "not_received": 1,
            "lost": 7,
            "discontinued": 3,
            "discontinued_reasons": [["withdrawal by participant", 3]],
            "analysed": 81,
            "excluded_from_analysis": 0,
        },
        {
            "label": "Waitlist",
            "allocated": 79,
            "received": 79,
            "not_received": 0,
            "lost": 12,
            "discontinued": 0,
            "discontinued_reasons": [],
            "analysed": 77,
            "excluded_from_analysis": 2,
        },
    ],
    "pooled": None,
}
BLINDED_FLOW = {**FLOW, "arms": [], "pooled": {"lost": 28, "discontinued": 8, "analysed": 236}}
KM: list[dict[str, Any]] = [
    {
        "label": "CBT app",
        "time": [0.0, 10.0, 21.0, 35.0],
        "survival": [1.0, 0.9, 0.75, 0.6],
        "ci_low": [None, 0.8, 0.62, 0.45],
        "ci_high": [None, 0.96, 0.85, 0.73],
        "censored": {"time": [7.0, 28.0, 56.0], "count": [1, 2, 4]},
    },
    {
        "label": "Waitlist",
        "time": [0.0, 14.0, 42.0],
        "survival": [1.0, 0.95, 0.85],
        "ci_low": [None, 0.87, 0.74],
        "ci_high": [None, 0.98, 0.92],
        "censored": {"time": [3.0, 14.0, 30.0, 49.0, 56.0], "count": [1, 1, 1, 2, 9]},
    },
]
AT_RISK = {
    "times": [0.0, 14.0, 28.0, 42.0, 56.0],
    "rows": [
        {"label": "CBT app", "counts": [20, 17, 15, 11, 4]},
        {"label": "Waitlist", "counts": [19, 17, 17, 15, 9]},
    ],
}
FOREST = [
    {"label": "All participants", "group": None, "estimate": -2.8, "ci_low": -3.9, "ci_high": -1.7, "n": 161},
    {"label": "Site 01", "group": "Site", "estimate": -3.1, "ci_low": -4.9, "ci_high": -1.3, "n": 60},
    {"label": "Site 02", "group": "Site", "estimate": None, "ci_low": None, "ci_high": None, "n": 7},
]
LSMEANS = [
    {
        "label": arm,
        "points": [
            {
                "visit": v,
                "day": d,
                "estimate": e + shift,
                "ci_low": e + shift - 0.8,
                "ci_high": e + shift + 0.8,
            }
            for v, d, e in (("W02", 14, -2.0), ("W04", 28, -3.5), ("W08", 56, -5.0))
        ],
    }
    for arm, shift in (("CBT app", -1.0), ("Attention control", 1.0))
]
ATTRITION = [
    {
        "label": "CBT app",
        "using": {"time": [0, 10, 30, 84], "proportion": [1.0, 0.8, 0.55, 0.55]},
        "in_trial": {"time": [0, 40, 84], "proportion": [1.0, 0.9, 0.9]},
    },
    {
        "label": "Attention control",
        "using": {"time": [0, 7, 21, 84], "proportion": [1.0, 0.7, 0.4, 0.4]},
        "in_trial": {"time": [0, 50, 84], "proportion": [1.0, 0.92, 0.92]},
    },
]
ENROLMENT = [
    {"label": "Leeds", "dates": ["2024-01-10", "2024-01-20", "2024-03-02"], "randomized": [2, 3, 1]},
    {"label": "York", "dates": ["2024-01-15", "2024-04-01"], "randomized": [1, 6]},
]
COMPLETENESS = [
    {"visit": v, "observed": o, "total": 240, "group": g}
    for v, o in (("BL", 240), ("W04", 201), ("W08", 187))
    for g in ("PHQ-9", "GAD-7")
]

DRAW: dict[str, Callable[[], str]] = {
    "consort": lambda: figures.consort_diagram(FLOW),
    "consort_blinded": lambda: figures.consort_diagram(BLINDED_FLOW),
    "km": lambda: figures.km_plot(
        KM,
        at_risk=AT_RISK,
        xlabel="Days since randomization",
        ylabel="Proportion without response",
        end_day=56,
    ),
    "forest": lambda: figures.forest_plot(
        FOREST,
        xlabel="Difference in PHQ-9 change",
        favours=("favours CBT", "favours control"),
    ),
    "forest_log": lambda: figures.forest_plot(
        [{"label": "Time to response", "estimate": 2.1, "ci_low": 1.3, "ci_high": 3.4}],
        xlabel="Hazard ratio",
        null_value=1.0,
        log_scale=True,
    ),
    "lsmeans": lambda: figures.lsmeans_by_visit(LSMEANS, ylabel="LS-mean change in PHQ-9"),
    "attrition": lambda: figures.attrition_chart(ATTRITION, days_label="Study day"),
    "enrolment": lambda: figures.enrolment_chart(ENROLMENT, target=30),
    "completeness": lambda: figures.completeness_chart(COMPLETENESS),
}
EXPECTED_TEXT = {
    "consort": [
        "Assessed for eligibility (n = 420)",
        "Excluded (n = 180)",
        "Screening PHQ-9 below 10 (n = 97)",
        "Declined to participate or not randomized for other reasons (n = 30)",
        "Randomized (n = 240)",
        "Allocated to CBT app (n = 80)",
        "Received allocated intervention (n = 74)",
        "Allocated to Attention control (n = 81)",
        "withdrawal by investigator (n = 1)",
        "Lost to follow-up (n = 12)",
        "Analysed (n = 77)",
        "Excluded from analysis (n = 2)",
        "Enrolment",
        "Allocation",
        "Follow-up",
        "Analysis",
    ],
    "consort_blinded": ["Randomized (n = 240)", "Lost to follow-up (n = 28)", "Analysed (n = 236)"],
    "km": ["CBT app", "Waitlist", "Number at risk", "17", "15", "11", "Days since randomization"],
    "forest": ["All participants", "Site", "Site 01", "-3.10 (-4.90 to -1.30)", "not estimable", "60"],
    "forest_log": ["Time to response", "2.10 (1.30 to 3.40)", "Hazard ratio"],
    "lsmeans": ["CBT app", "Attention control", "W02", "W04", "W08", "LS-mean change in PHQ-9"],
    "attrition": ["CBT app", "Attention control", "still using the app", "still in the trial", "100%"],
    "enrolment": ["Leeds", "York", "All sites", "Target (n = 30)"],
    "completeness": ["BL", "W04", "W08", "PHQ-9", "GAD-7", "100%", "84%", "78%"],
}


@pytest.fixture(scope="module")
def drawn() -> dict[str, str]:
    return {name: draw() for name, draw in DRAW.items()}


def texts(svg: str) -> str:
    """The figure's text elements, joined by spaces (wrapped lines read as one)."""
    root = ET.fromstring(svg)
    return " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def font_sizes_pt(svg: str) -> list[float]:
    root = ET.fromstring(svg)
    width_pt = float(root.attrib["width"].removesuffix("pt"))
    scale = width_pt / float(root.attrib["viewBox"].split()[2])  # user units -> points
    sizes = []
    for t in root.iter(f"{SVG}text"):
        size = t.attrib["font-size"]
        assert size.endswith("px")
        sizes.append(float(size.removesuffix("px")) * scale)
    return sizes


# --- form ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DRAW))
def test_a_figure_is_inline_svg_with_text_as_text_at_9_pt_or_more(drawn: dict[str, str], name: str) -> None:
    svg = drawn[name]
    assert svg.startswith("<svg")  # no XML declaration or DOCTYPE: inlined as is
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert float(root.attrib["width"].removesuffix("pt")) <= 6.9 * 72
    assert not list(root.iter(f"{SVG}image"))  # no raster
    # nothing WeasyPrint's HTML parser would read as CSS of the page
    assert not list(root.iter(f"{SVG}style"))
    assert not any("style" in e.attrib for e in root.iter())
    sizes = font_sizes_pt(svg)
    assert sizes
    assert min(sizes) >= 9.0
    assert {t.attrib["font-family"] for t in root.iter(f"{SVG}text")} == {
        "Report Sans, DejaVu Sans, sans-serif"
    }
    for expected in EXPECTED_TEXT[name]:
        assert expected in texts(svg), expected


@pytest.mark.parametrize("name", ["consort", "km", "forest", "completeness"])
def test_the_same_input_gives_the_same_bytes(drawn: dict[str, str], name: str) -> None:
    assert DRAW[name]() == drawn[name]


def test_ids_are_unique_across_figures_and_every_reference_resolves(drawn: dict[str, str]) -> None:
    seen: list[str] = []
    for svg in drawn.values():
        root = ET.fromstring(svg)
        ids = [e.attrib["id"] for e in root.iter() if "id" in e.attrib]
        seen.extend(ids)
        refs = re.findall(r"url\(#([^)]+)\)", svg) + [
            e.attrib[XLINK_HREF][1:] for e in root.iter() if XLINK_HREF in e.attrib
        ]
        assert set(refs) <= set(ids)
    assert len(seen) == len(set(seen))


def test_the_arms_differ_in_line_style_as_well_as_colour(drawn: dict[str, str]) -> None:
    root = ET.fromstring(drawn["km"])
    curves = [e for e in root.iter() if e.attrib.get("id", "").endswith(("km-curve-0", "km-curve-1"))]
    paths = [next(c.iter(f"{SVG}path")) for c in curves]
    assert len({p.attrib["stroke"] for p in paths}) == 2
    assert [("stroke-dasharray" in p.attrib) for p in paths] == [False, True]


# --- content -----------------------------------------------------------------------------------


def censor_ticks(svg: str, i: int) -> int:
    root = ET.fromstring(svg)
    group = next(e for e in root.iter() if e.attrib.get("id", "").endswith(f"km-censored-{i}"))
    return len(list(group.iter(f"{SVG}use")))


def test_km_plot_draws_one_censor_tick_per_censoring_time_and_the_numbers_at_risk(
    drawn: dict[str, str],
) -> None:
    svg = drawn["km"]
    for i, curve in enumerate(KM):
        assert censor_ticks(svg, i) == len(curve["censored"]["time"])
    words = texts(svg).split()
    for row in AT_RISK["rows"]:
        for n in row["counts"]:
            assert str(n) in words
    # the x ticks are the at-risk times
    for t in ("0", "14", "28", "42", "56"):
        assert t in words


def test_the_consort_diagram_notes_that_reasons_may_overlap(drawn: dict[str, str]) -> None:
    # 40 + 97 + 21 = 158 reasons for 150 people not eligible
    assert "may fail more than one criterion" in texts(drawn["consort"])
    assert "Allocated to" not in texts(drawn["consort_blinded"])  # nothing by arm while blinded


def test_the_report_stylesheet_embeds_the_face_the_figures_ask_for() -> None:
    from importlib import resources

    css = resources.files("reports").joinpath("static", "report.css").read_text(encoding="utf-8")
    faces = re.findall(r"@font-face\s*\{[^}]*font-family:\s*\"([^\"]+)\"[^}]*DejaVuSans", css)
    assert figures.REPORT_FONT_FACE in faces


def test_figures_inline_in_html_render_to_searchable_pdf_text_in_the_embedded_face_without_a_message(
    drawn: dict[str, str],
) -> None:
    from pathlib import Path

    import matplotlib
    import pikepdf
    from pdfminer.high_level import extract_text

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="HarfBuzz-Subset will be required", category=DeprecationWarning
        )
        import weasyprint

    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not record.name.startswith("weasyprint.progress"):
                messages.append(record.getMessage())

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    faces = "".join(
        f'@font-face {{ font-family: "{figures.REPORT_FONT_FACE}"; font-weight: {weight}; '
        f'src: url("{(fonts / file).as_uri()}"); }}'
        for weight, file in (("normal", "DejaVuSans.ttf"), ("bold", "DejaVuSans-Bold.ttf"))
    )
    body = "".join(f"<figure>{drawn[name]}</figure>" for name in ("consort", "km", "forest", "lsmeans"))
    html = f"<html><head><style>{faces}</style></head><body>{body}</body></html>"
    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("weasyprint")
    logger.addHandler(handler)
    try:
        pdf = weasyprint.HTML(string=html).write_pdf(full_fonts=True)
    finally:
        logger.removeHandler(handler)
    assert messages == []
    text = " ".join(extract_text(io.BytesIO(pdf)).split())
    for expected in ("Allocated to CBT app", "Number at risk", "not estimable", "W08"):
        assert expected in text
    with pikepdf.open(io.BytesIO(pdf)) as document:
        names = {
            str(o.FontName)
            for o in document.objects
            if isinstance(o, pikepdf.Dictionary) and o.get("/Type") == "/FontDescriptor"
        }
    assert names
    assert all("+Report-Sans" in name for name in names), names  # never the system's DejaVu


# --- bad input -------------------------------------------------------------------------------


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


BAD: list[tuple[Callable[[], str], str]] = [
    (lambda: figures.consort_diagram({}), "flow"),
    (lambda: figures.consort_diagram(_with(FLOW, arms=[], pooled=None)), r"flow\['pooled'\]"),
    (
        lambda: figures.consort_diagram(_with(FLOW, arms=FLOW["arms"][:1], randomized=80, screened=260)),
        r"flow\['arms'\] must hold 2 to 4 arms",
    ),
    (
        lambda: figures.consort_diagram(
            _with(FLOW, arms=[_with(FLOW["arms"][0], received=70), *FLOW["arms"][1:]])
        ),
        r"flow\['arms'\]\[0\]",
    ),
    (lambda: figures.consort_diagram(_with(FLOW, screened=400)), "screened"),
    (lambda: figures.km_plot([], at_risk=None, xlabel="x", ylabel="y", end_day=56), "curves"),
    (
        lambda: figures.km_plot(
            [_with(KM[0], survival=[1.0, 0.9])], at_risk=None, xlabel="x", ylabel="y", end_day=56
        ),
        r"curves\[0\]\['survival'\]",
    ),
    (
        lambda: figures.km_plot(
            KM,
            at_risk={"times": [0.0, 14.0], "rows": [{"label": "CBT app", "counts": [20]}]},
            xlabel="x",
            ylabel="y",
            end_day=56,
        ),
        r"at_risk\['rows'\]\[0\]\['counts'\]",
    ),
    (
        lambda: figures.km_plot(KM, at_risk={"times": [], "rows": []}, xlabel="x", ylabel="y", end_day=56),
        r"at_risk\['times'\]",
    ),
    (lambda: figures.forest_plot([], xlabel="x"), "rows"),
    (
        lambda: figures.forest_plot([_with(FOREST[0], estimate=5.0)], xlabel="x"),
        r"rows\[0\]",
    ),
    (lambda: figures.forest_plot(FOREST[:2], xlabel="x", log_scale=True, null_value=1.0), r"rows\[0\]"),
    (lambda: figures.lsmeans_by_visit([], ylabel="y"), "series"),
    (
        lambda: figures.lsmeans_by_visit([{"label": "A", "points": []}], ylabel="y"),
        r"series\[0\]\['points'\]",
    ),
    (lambda: figures.attrition_chart([], days_label="d"), "series"),
    (
        lambda: figures.attrition_chart(
            [_with(ATTRITION[0], using={"time": [0, 10], "proportion": [1.0, 1.3]})],
            days_label="d",
        ),
        r"series\[0\]\['using'\]\['proportion'\]",
    ),
    (lambda: figures.enrolment_chart([]), "series"),
    (
        lambda: figures.enrolment_chart(
            [_with(ENROLMENT[0], dates=["2024-01-10", "2024-01-10", "2024-02-01"])]
        ),
        r"series\[0\]\['dates'\]",
    ),
    (lambda: figures.completeness_chart([]), "rows"),
    (lambda: figures.completeness_chart([{"visit": "W04", "observed": 250, "total": 240}]), r"rows\[0\]"),
]


@pytest.mark.parametrize(("draw", "argument"), BAD)
def test_empty_or_inconsistent_input_is_refused_naming_the_argument(
    draw: Callable[[], str], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        draw()


# --- from a real analysis-results document ---------------------------------------------------


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """The results JSON of a simulated three-arm trial (120 participants), by analysis id."""
    trial = simulate(120, 11)
    spec = replace(
        sap_spec_of(example_document()),
        imputations=None,
        tipping_deltas=(),
        subgroups=(),
        without_prorating=False,
    )
    doc = run_sap(
        trial.adsl, trial.adqs, trial.adtte, spec, blinded=False, input_sha256="-", screening=trial.screening
    )
    return {r["analysis_id"]: r for r in json.loads(doc.to_json())["results"]}


def test_the_km_records_of_a_real_run_feed_km_plot_directly(results: dict[str, dict[str, Any]]) -> None:
    medians = [r for aid, r in results.items() if aid.startswith("TT_RESPONSE.E6_TT_RESPONSE.KM_MEDIAN.")]
    assert [r["arm"] for r in medians] == ["CBT", "ATTN", "WAIT"]
    curves = [{"label": r["arm"], **r["statistics"]["curve"]} for r in medians]
    days = list(medians[0]["statistics"]["at_risk"])
    at_risk = {
        "times": [float(d) for d in days],
        "rows": [
            {"label": r["arm"], "counts": [r["statistics"]["at_risk"][d] for d in days]} for r in medians
        ],
    }
    svg = figures.km_plot(
        curves,
        at_risk=at_risk,
        xlabel="Days since randomization",
        ylabel="Proportion without response",
        end_day=medians[0]["parameters"]["end_of_follow_up_day"],
    )
    for i, r in enumerate(medians):
        assert censor_ticks(svg, i) == len(r["statistics"]["curve"]["censored"]["time"]) > 0
    words = texts(svg).split()
    for row in at_risk["rows"]:
        assert row["label"] in words
        assert all(str(n) in words for n in row["counts"])
    assert min(font_sizes_pt(svg)) >= 9.0


def test_the_lsmean_and_consort_records_of_a_real_run_feed_their_figures(
    results: dict[str, dict[str, Any]],
) -> None:
    prefix = "PHQ9_CHG_W8.E1_PRIMARY.MMRM.LSMEAN."
    series: dict[str, list[dict[str, Any]]] = {}
    for aid, r in results.items():
        if aid.startswith(prefix):
            visit = r["parameters"]["visit"]
            day = dict(zip(("W02", "W04", "W06", "W08", "W12"), (14, 28, 42, 56, 84), strict=True))[visit]
            point = {"visit": visit, "day": day, **{k: r[k] for k in ("estimate", "ci_low", "ci_high")}}
            series.setdefault(r["arm"], []).append(point)
    assert set(series) == {"CBT", "ATTN"}
    svg = figures.lsmeans_by_visit(
        [{"label": arm, "points": points} for arm, points in series.items()],
        ylabel="LS-mean change in PHQ-9",
    )
    assert {"CBT", "ATTN", "W02", "W12"} <= set(texts(svg).split())

    def n(aid: str) -> int:
        value = results[f"CONSORT.{aid}"]["n"]
        assert isinstance(value, int)
        return value

    arms = ("CBT", "ATTN", "WAIT")
    flow = {
        "screened": n("SCREENED"),
        "excluded": n("EXCLUDED"),
        "not_eligible": n("NOT_ELIGIBLE"),
        "reasons": [[k, v] for k, v in results["CONSORT.NOT_ELIGIBLE"]["statistics"]["reasons"].items()],
        "declined": n("DECLINED"),
        "randomized": n("RANDOMIZED"),
        "arms": [
            {
                "label": a,
                "allocated": n(f"ALLOCATED.{a}"),
                "received": n(f"RECEIVED.{a}"),
                "not_received": n(f"NOT_RECEIVED.{a}"),
                "lost": n(f"LOST_TO_FOLLOW_UP.{a}"),
                "discontinued": n(f"DISCONTINUED.{a}"),
                "discontinued_reasons": [
                    [k, v] for k, v in results[f"CONSORT.DISCONTINUED.{a}"]["statistics"]["reasons"].items()
                ],
                "analysed": n(f"ANALYSED.{a}"),
                "excluded_from_analysis": n(f"EXCLUDED_FROM_ANALYSIS.{a}"),
            }
            for a in arms
        ],
        "pooled": None,
    }
    text = texts(figures.consort_diagram(flow))
    assert f"Randomized (n = {n('RANDOMIZED')})" in text
    for a in arms:
        assert f"Allocated to {a} (n = {n(f'ALLOCATED.{a}')})" in text
