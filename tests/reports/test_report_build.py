"""Building the report: who may, when the final report may be made, what its numbers are, how
the stored context is signed later, and what the renderer will fetch."""

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session

from reports import ReportContext, SignatureLine, build_context, html_to_pdf, render_pdf
from reports.context import fmt_ci, fmt_estimate, fmt_estimate_ci, fmt_p, fmt_timestamp
from reports.render import AssetRefused, url_fetcher
from tests.conftest import create_user_with_grants
from tests.reports.conftest import CODE, ReportTrial, capture_weasyprint, page_texts
from trials.core.audit import services as audit
from trials.core.errors import Forbidden


def test_the_final_report_waits_for_the_database_lock_and_the_unblinding(report_trial: ReportTrial) -> None:
    before_lock = report_trial.refused_before_lock
    assert "the database lock" in before_lock
    assert "unblinding" in before_lock
    assert "analysis plan" not in before_lock  # the plan was locked
    after_lock = report_trial.refused_before_unblinding
    assert "unblinding" in after_lock
    assert "database lock" not in after_lock


def test_only_a_role_that_may_view_results_gets_a_report(report_trial: ReportTrial) -> None:
    with Session(report_trial.engine) as session:
        audit.set_actor(session, audit.Actor.system("system"))
        _user, monitor = create_user_with_grants(session, "mona", f"monitor:{CODE}")
        for variant in ("blinded", "final"):
            with pytest.raises(Forbidden, match="view results"):
                build_context(CODE, session=session, by=monitor, variant=variant)  # type: ignore[arg-type]
        session.rollback()


def test_the_primary_estimate_and_interval_printed_are_those_of_the_results(
    report_trial: ReportTrial,
) -> None:
    final = report_trial.final
    results = json.loads(final.context.results_json)
    (primary,) = [r for r in results["results"] if r["primary"]]
    estimate = fmt_estimate(primary["estimate"])
    interval = fmt_ci(primary["ci_low"], primary["ci_high"])
    assert fmt_estimate_ci(primary["estimate"], primary["ci_low"], primary["ci_high"]) in final.text
    synopsis = next(p for p in final.pages if "Primary result" in p.text)
    assert estimate in synopsis.text
    assert interval in synopsis.text
    assert fmt_p(primary["p_value"]) in synopsis.text
    # The same numbers, read back from the formatted text, round to the JSON's.
    assert float(estimate) == pytest.approx(primary["estimate"], abs=0.005)


def test_the_context_round_trips_and_a_signed_copy_shows_its_signatures(report_trial: ReportTrial) -> None:
    for rendered in (report_trial.blinded, report_trial.final):
        text = rendered.context.to_json()
        again = ReportContext.from_json(text)
        assert again == rendered.context
        assert again.to_json() == text
    if report_trial.engine.dialect.name != "sqlite":
        return  # rendering a stored context does not touch the database: its PDF is checked once
    stored = ReportContext.from_json(report_trial.blinded.context.to_json())
    bound = "9f2c" * 16
    signatures = [
        SignatureLine(
            "Stella Statistician", "stella", "statistician", "authorship", "2025-06-01T09:30:00+00:00", bound
        ),
        SignatureLine("Sam Sponsor", "sam", "sponsor", "approval", "2025-06-02T14:05:10+00:00", bound),
    ]
    with capture_weasyprint() as captured:
        pdf = render_pdf(stored, signatures=signatures)
    assert captured.records == []
    (last,) = [page.text for page in page_texts(pdf, last_only=True)]
    for sig in signatures:
        assert sig.printed_name in last
        assert f"({sig.username})" in last
        assert sig.meaning in last
        assert fmt_timestamp(sig.signed_at) in last
    assert last.replace(" ", "").count(bound) == 2
    unsigned = report_trial.blinded.pages[-1].text
    assert "Stella Statistician" not in unsigned
    assert "unsigned" in unsigned


def test_building_reports_its_progress(report_trial: ReportTrial) -> None:
    built = report_trial.final.built
    fractions = [f for _label, f in built]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert "running the analysis plan" in [label for label, _f in built]


def test_numbers_are_formatted_in_one_way() -> None:
    assert [fmt_estimate(v) for v in (-3.4651, -0.004, 0.0004, 2.005001, None, float("nan"))] == [
        "-3.47",
        "0.00",
        "0.00",
        "2.01",
        "NE",
        "NE",
    ]
    assert [fmt_p(v) for v in (0.0004, 0.00099, 0.001, 0.04951, 0.5, None)] == [
        "<0.001",
        "<0.001",
        "0.001",
        "0.050",
        "0.500",
        "NE",
    ]
    assert fmt_ci(-5.8234, -1.1049) == "(-5.82, -1.10)"
    assert fmt_estimate_ci(-3.4651, -5.8234, None) == "-3.47 (-5.82, NE)"


def test_a_signature_has_a_known_meaning() -> None:
    with pytest.raises(ValueError, match="meaning"):
        SignatureLine("A", "a", "sponsor", "approved", datetime.now(UTC).isoformat(), "0" * 64)


def test_the_fetcher_serves_packaged_assets_only() -> None:
    fetcher = url_fetcher()
    css = fetcher.fetch("trials-report:/report.css")
    assert b"@page" in css.read()
    assert css.content_type == "text/css"
    assert fetcher.fetch("trials-report:/fonts/DejaVuSans.ttf").read()[:4] == b"\x00\x01\x00\x00"
    for url in (
        "file:///etc/passwd",
        "FILE:///etc/hostname",
        "http://example.com/report.css",
        "https://example.com/font.ttf",
        "data:text/css,body{}",
        "trials-report:/../../etc/passwd",
        "trials-report:/static/report.css",
        "ftp://example.com/x",
    ):
        with pytest.raises(AssetRefused):
            fetcher.fetch(url)


def test_a_file_url_in_the_html_is_refused_not_fetched() -> None:
    html = (
        '<html><head><link rel="stylesheet" href="trials-report:/report.css"></head><body>'
        '<h1 id="a">A</h1><img src="file:///etc/passwd"><img src="http://127.0.0.1:9/x.png">'
        "</body></html>"
    )
    with capture_weasyprint() as captured:
        pdf = html_to_pdf(html)
    assert pdf.startswith(b"%PDF-")
    refusals = [r.getMessage() for r in captured.records if r.levelno >= logging.ERROR]
    assert len(refusals) == 2
    assert all("packaged assets only" in m for m in refusals)
    assert "root:" not in page_texts(pdf)[0].text


def test_a_blinded_report_before_the_first_participant_and_no_final_one_on_a_draft_plan(
    session: Session, make_site: Any, make_user: Any
) -> None:
    from protocols import services as protocols
    from protocols.document import example_protocol_path
    from reports.gather import final_report_missing
    from reports.render import render_html
    from tests.conftest import set_up_example_trial
    from trials.core.accounts import services as accounts
    from trials.core.errors import Conflict

    people = set_up_example_trial(session, make_site, make_user, {"sponsor": "sam:sponsor:TRIAL"})
    context = build_context(CODE, session=session, by=people["sponsor"], variant="blinded")
    assert context.sections["participants"]["flow"]["randomized"] == 0
    assert context.sections["participants"]["all_hold"] is True
    assert "Randomized (n = 0)" in render_html(context)
    # Another trial whose protocol is still a draft: no final report, and the refusal says why.
    source = protocols.Source(
        example_protocol_path().read_text(encoding="utf-8").replace("MOOD-CBT-01", "MOOD-CBT-02"), "yaml"
    )
    protocols.register(source, session=session, by=accounts.SYSTEM)
    missing = final_report_missing("MOOD-CBT-02", session=session)
    assert missing == [
        "a locked analysis plan (protocol version)",
        "the database lock",
        "the trial's unblinding",
    ]
    _user, sponsor = create_user_with_grants(session, "sara", "sponsor:MOOD-CBT-02")
    with pytest.raises(Conflict, match="a locked analysis plan"):
        build_context("MOOD-CBT-02", session=session, by=sponsor, variant="final")
