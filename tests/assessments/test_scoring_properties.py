"""Scoring properties not covered by tests/analysis/test_scoring.py: when a total exists, that
answering higher never lowers it, the item-9 safety signal, and the same score whichever way an
assessment comes in (the JSON API or a CSV import, on SQLite and PostgreSQL).
"""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import Session

from analysis.scoring import GAD7, PHQ8, PHQ9, ScoringRule, prorated_total, total_score
from tests.assessments.conftest import BASE, day, participant_id
from tests.imports.conftest import ASSESSMENT_HEADER, assessment_row, csv_bytes, post_csv
from trials.assessments.api import assessment_read
from trials.assessments.models import Assessment
from trials.safety.models import Kind, SafetyEvent
from trials.safety.services import signals

RULES = [PHQ9, PHQ8, GAD7]
RESPONSE = st.one_of(st.none(), st.integers(0, 3))


@st.composite
def questionnaires(draw: Any, rule: ScoringRule | None = None) -> tuple[ScoringRule, dict[int, int | None]]:
    rule = rule if rule is not None else draw(st.sampled_from(RULES))
    return rule, {item: draw(RESPONSE) for item in range(1, rule.n_items + 1)}


@given(questionnaires())
def test_a_total_exists_exactly_when_enough_items_are_answered(case: Any) -> None:
    rule, items = case
    answered = [i for i in rule.scored_items if items.get(i) is not None]
    enough = len(answered) == rule.n_scored or (
        len(answered) >= rule.min_answered and all(items.get(i) is not None for i in rule.required_items)
    )
    result = prorated_total(items, rule)
    assert (result.total is not None) == enough
    assert result.prorated == (enough and len(answered) < rule.n_scored)
    # Without prorating, only a complete questionnaire has a total.
    assert (total_score(items, rule) is not None) == (len(answered) == rule.n_scored)


@given(questionnaires(), st.data())
def test_answering_higher_never_lowers_the_total_nor_the_band(case: Any, data: Any) -> None:
    rule, items = case
    answered = [i for i in rule.scored_items if items.get(i) is not None and items[i] < rule.item_max]
    if not answered:
        return
    item = data.draw(st.sampled_from(answered))
    higher = {**items, item: items[item] + 1}
    before, after = prorated_total(items, rule), prorated_total(higher, rule)
    assert (before.total is None) == (after.total is None)  # the same items are answered
    if before.total is None or after.total is None:
        return
    assert after.total >= before.total
    assert rule.band_labels.index(after.severity) >= rule.band_labels.index(before.severity)


@given(
    instrument=st.sampled_from(["PHQ-9", "PHQ-8", "GAD-7"]),
    item9=st.one_of(st.none(), st.integers(0, 3)),
    total=st.one_of(st.none(), st.integers(0, 27)),
    baseline=st.one_of(st.none(), st.integers(0, 27)),
)
def test_the_item_9_signal_is_raised_exactly_when_item_9_is_positive_or_missing(
    instrument: str, item9: int | None, total: int | None, baseline: int | None
) -> None:
    kinds = signals(instrument=instrument, item9=item9, total=total, baseline_total=baseline, threshold=5)
    phq9 = instrument == "PHQ-9"
    assert (Kind.ITEM9_POSITIVE in kinds) == (phq9 and item9 is not None and item9 > 0)
    assert (Kind.ITEM9_MISSING in kinds) == (phq9 and item9 is None)
    if not phq9:
        assert kinds == []


# One PHQ-9 or GAD-7 questionnaire as it is entered: any items answered or left empty.
ENTERED = st.sampled_from([("PHQ-9", PHQ9), ("GAD-7", GAD7)]).flatmap(
    lambda pair: st.tuples(st.just(pair[0]), questionnaires(pair[1]).map(lambda case: case[1]))
)


def test_the_api_and_a_csv_import_score_alike(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant(randomized_days_ago=40)
    pid = participant_id(session, label)
    assessed_on = day(14)  # the Week 2 visit

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(ENTERED)
    def alike(entered: tuple[str, dict[int, int | None]]) -> None:
        instrument, items = entered
        rule = PHQ9 if instrument == "PHQ-9" else GAD7
        expected = prorated_total(items, rule)
        scores = []
        for channel in ("api", "csv"):
            savepoint = session.begin_nested()
            session.connection()  # the savepoint is taken now, before the request writes
            try:
                if channel == "api":
                    response = client.post(
                        f"{BASE}/participants/{label}/assessments",
                        json={"instrument": instrument, "assessed_on": assessed_on, "items": items},
                        headers=h["lds"],
                    )
                else:
                    values = [items[i] for i in range(1, rule.n_items + 1)]
                    content = csv_bytes(
                        ASSESSMENT_HEADER,
                        [assessment_row(label, assessed_on, *values, instrument=instrument)],
                    )
                    response = post_csv(client, "assessments", content, h["lds"])
                assert response.status_code == 201, response.get_data(as_text=True)
                session.expire_all()
                stored = session.scalars(select(Assessment).where(Assessment.participant_id == pid)).one()
                events = session.scalars(
                    select(SafetyEvent).where(SafetyEvent.assessment_id == stored.id)
                ).all()
                read = assessment_read(stored, list(events), session=session)
                assert stored.items() == items, (channel, stored.items(), items)
                scores.append(
                    (
                        read.total,
                        read.prorated,
                        read.items_answered,
                        read.severity,
                        sorted(e.kind for e in events),
                    )
                )
                if channel == "api":  # what the API answered is what it reads back
                    body = response.get_json()
                    assert (
                        body["total"],
                        body["prorated"],
                        body["items_answered"],
                        body["severity"],
                    ) == scores[-1][:4]
            finally:
                savepoint.rollback()
        assert scores[0] == scores[1], scores
        total, prorated, answered, severity, kinds = scores[0]
        assert (total, prorated, answered, severity) == (
            expected.total,
            expected.prorated,
            expected.items_answered,
            expected.severity,
        )
        if instrument == "PHQ-9":
            assert (Kind.ITEM9_POSITIVE.value in kinds) == ((items[9] or 0) > 0)
            assert (Kind.ITEM9_MISSING.value in kinds) == (items[9] is None)

    alike()
