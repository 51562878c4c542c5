"""`trials simulate`: a synthetic trial through the platform's services, reproducible from its
seed, with the features the analyses need (screen failures, a treatment effect, dropout,
missed visits, item-9 positives, adverse events, app use, intercurrent events)."""

import json
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from analysis.scoring import RULES, total_score
from tests.conftest import (
    query_rows,
    run_cli,
    set_up_example_trial,
    site_and_user_makers,
)
from trials.core.audit import services as audit
from trials.core.db import make_engine
from trials.core.errors import Conflict
from trials.simulate import plan, services

CODE = "MOOD-CBT-01"
STAFF = {"sponsor": "sam:sponsor:TRIAL"}


def clinical_content(session: Session) -> dict[str, Any]:
    """Everything clinical the simulation wrote (values and clinical dates, no entry times)."""
    q = lambda sql: [tuple(r) for r in session.execute(text(sql))]  # noqa: E731
    return {
        "participants": q(
            "SELECT label, status, screened_on, age_years, screening_phq9, eligible, "
            "screen_failure_reasons, consent_date FROM participant ORDER BY label"
        ),
        "slots": q(
            "SELECT p.label, s.arm_code, s.stratum, s.position, s.randomized_at FROM allocation_slot s "
            "JOIN participant p ON p.id = s.participant_id ORDER BY p.label"
        ),
        "assessments": q(
            "SELECT p.label, a.instrument, a.assessed_on, a.visit_code, a.in_window, a.item_1, a.item_2, "
            "a.item_3, a.item_4, a.item_5, a.item_6, a.item_7, a.item_8, a.item_9, a.item_10 "
            "FROM assessment a JOIN participant p ON p.id = a.participant_id "
            "ORDER BY p.label, a.assessed_on, a.instrument"
        ),
        "safety": q(
            "SELECT p.label, e.kind, e.item9 FROM safety_event e "
            "JOIN participant p ON p.id = e.participant_id ORDER BY p.label, e.kind, e.item9"
        ),
        "adverse_events": q(
            "SELECT p.label, e.term, e.onset_date, e.end_date, e.serious, e.severity, e.relatedness, "
            "e.outcome FROM adverse_event e JOIN participant p ON p.id = e.participant_id "
            "ORDER BY p.label, e.onset_date, e.term"
        ),
        "dispositions": q(
            "SELECT p.label, e.kind, e.event_date, e.reason FROM disposition_event e "
            "JOIN participant p ON p.id = e.participant_id ORDER BY p.label, e.event_date, e.kind"
        ),
        "list": q("SELECT list_sha256 FROM allocation_list"),
    }


def run(session: Session, seed: int, n: int = 30) -> tuple[services.SimulationReport, dict[str, Any]]:
    savepoint = session.begin_nested()
    report = services.simulate(CODE, participants_wanted=n, seed=seed, session=session)
    content = clinical_content(session)
    savepoint.rollback()
    return report, content


def test_the_same_seed_gives_the_same_trial_and_another_seed_another(
    session: Session, make_site: Any, make_user: Any
) -> None:
    set_up_example_trial(session, make_site, make_user, STAFF)
    first_report, first = run(session, seed=11)
    again_report, again = run(session, seed=11)
    assert again == first
    assert again_report == first_report
    _other_report, other = run(session, seed=12)
    assert other["list"] != first["list"]
    assert other["assessments"] != first["assessments"]
    assert first_report.randomized == 30
    assert len(first["slots"]) == 30
    # Dates come from the fixed study start, not from today.
    assert min(str(p[2]) for p in first["participants"]) == plan.STUDY_START.isoformat()


def test_the_simulated_trial_has_what_the_analyses_need(
    session: Session, make_site: Any, make_user: Any
) -> None:
    set_up_example_trial(session, make_site, make_user, STAFF)
    report = services.simulate(CODE, participants_wanted=90, seed=2025, session=session)
    content = clinical_content(session)
    assert report.randomized == 90
    assert report.screen_failures > 0
    assert report.screened == report.randomized + report.screen_failures
    failed = [p for p in content["participants"] if p[1] == "screen_failed"]
    assert len(failed) == report.screen_failures
    assert all(json.loads(p[6]) for p in failed)  # each with its reasons
    # The report is pooled (it may be printed before unblinding); the slots hold the arms.
    assert {arm for _label, arm, *_ in content["slots"]} == {"CBT", "ATTN", "WAIT"}
    assert report.dispositions.get("completed", 0) > 0
    assert (
        report.dispositions.get("withdrawal_by_subject", 0) + report.dispositions.get("lost_to_follow_up", 0)
        > 0
    )
    assert report.safety_events > 0
    assert report.adverse_events > 0
    assert report.app_use_days > 0
    assert len(content["adverse_events"]) == report.adverse_events
    kinds = [d[1] for d in content["dispositions"]]
    assert sum(kinds.count(k) for k in ("completed", "withdrawal_by_subject", "lost_to_follow_up")) == 90
    assert kinds.count("stopped_app_use") > 0
    assert len(kinds) == 90 + report.intercurrent_events
    assert any(a[4] is False or a[4] == 0 for a in content["assessments"])  # out-of-window visits
    # Missing items are missing (NULL), never 0.
    assert any(None in a[5:14] for a in content["assessments"] if a[1] == "PHQ-9")

    # A true treatment effect: mean PHQ-9 change at week 8 is larger in the CBT arm.
    arm_of = {label: arm for label, arm, *_ in content["slots"]}
    scores: dict[str, dict[str, int | None]] = defaultdict(dict)
    for a in content["assessments"]:
        if a[1] == "PHQ-9":
            items = {n: a[4 + n] for n in range(1, 10)}
            scores[a[0]][a[3]] = total_score(items, RULES["PHQ-9"])
    change: dict[str, list[int]] = defaultdict(list)
    for label, visits in scores.items():
        if visits.get("BL") is not None and visits.get("W08") is not None:
            change[arm_of[label]].append(visits["W08"] - visits["BL"])
    means = {arm: sum(v) / len(v) for arm, v in change.items()}
    assert means["CBT"] < means["ATTN"] < means["WAIT"] < 0

    # Missed visits: fewer W08 than baseline assessments.
    visits = [a[3] for a in content["assessments"] if a[1] == "PHQ-9"]
    assert visits.count("W08") < visits.count("BL") == 90

    report_chain = audit.verify_chain(session.connection())
    assert report_chain.ok
    actors = {
        r[0]
        for r in session.execute(
            text("SELECT DISTINCT username FROM audit_entry WHERE table_name = 'assessment'")
        )
    }
    assert actors == {"simulation"}


def test_a_trial_with_participants_is_not_simulated(session: Session, make_site: Any, make_user: Any) -> None:
    set_up_example_trial(session, make_site, make_user, STAFF)
    services.simulate(CODE, participants_wanted=3, seed=1, session=session)
    with pytest.raises(Conflict, match="already has participants"):
        services.simulate(CODE, participants_wanted=3, seed=1, session=session)


def test_the_command_line_simulates_and_reports(fresh_database_url: str) -> None:
    url = fresh_database_url
    engine = make_engine(url)
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system())

        make_site, make_user = site_and_user_makers(session)

        set_up_example_trial(session, make_site, make_user, STAFF)
        session.commit()
    engine.dispose()

    result = run_cli(url, "simulate", CODE, "--participants", "12", "--seed", "5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["randomized"] == 12
    randomized = "SELECT count(*) FROM allocation_slot WHERE participant_id IS NOT NULL"
    assert query_rows(url, randomized)[0][0] == 12
    assert (
        report["allocation_list_sha256"] == query_rows(url, "SELECT list_sha256 FROM allocation_list")[0][0]
    )
    again = run_cli(url, "simulate", CODE, "--participants", "12", "--seed", "5")
    assert again.exit_code == 1
    assert "already has participants" in again.output
    assert run_cli(url, "audit", "verify").exit_code == 0


def test_the_standalone_command_goes_live_with_the_list_the_demo_would_use(
    fresh_database_url: str, session: Session, make_site: Any, make_user: Any
) -> None:
    """`trials simulate` on a registered trial that is not live takes it live from the seed;
    the list is the one `trials demo --seed` generates (both derive it from the number)."""
    set_up_example_trial(session, make_site, make_user, STAFF)
    report, _content = run(session, seed=5, n=3)
    from trials.randomization import services as randomization

    savepoint = session.begin_nested()
    sponsor = make_user("sid", "sponsor:" + CODE)[1]
    allocation = randomization.go_live(CODE, session=session, by=sponsor, seed=services.allocation_seed(5))
    assert allocation.list_sha256 == report.allocation_list_sha256
    savepoint.rollback()
