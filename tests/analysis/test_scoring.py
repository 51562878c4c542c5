# Sources of the expected values in this file:
# - PHQ-9 total (items 1-9, 0-27; item 10 recorded, never added) and severity bands 0-4, 5-9,
#   10-14, 15-19, 20-27: Kroenke K, Spitzer RL, Williams JBW. J Gen Intern Med
#   2001;16(9):606-613.
# - PHQ-8 total (items 1-8, 0-24) with the same cut-points: Kroenke K, Strine TW, Spitzer RL,
#   et al. J Affect Disord 2009;114(1-3):163-173.
# - GAD-7 total (items 1-7, 0-21) and bands 0-4, 5-9, 10-14, 15-21: Spitzer RL, Kroenke K,
#   Williams JBW, Loewe B. Arch Intern Med 2006;166(10):1092-1097.
# - Prorating (PHQ-9 >= 7 of 9 with item 9 answered, GAD-7 >= 6 of 7,
#   total = round_half_up(mean of answered x number of items)) is the project's default in
#   /work/shared/DOMAIN.md section 1, not a published rule; by the same rule the PHQ-8 is not
#   prorated by default (analysis.scoring.PHQ8, documented in prorated_total's Notes).
# Prorated expected values below are worked by hand from that formula, e.g. PHQ-9 with 8
# items answered summing to 4: 4 / 8 x 9 = 4.5 -> 5 (banker's rounding would give 4).

import ast
import inspect
from dataclasses import FrozenInstanceError, replace
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import scoring
from analysis.scoring import (
    GAD7,
    PHQ8,
    PHQ9,
    RULES,
    SCORE_COLUMNS,
    ItemResponseError,
    ScoreResult,
    ScoringRule,
    default_item_columns,
    prorated_total,
    round_half_up,
    score_frame,
    severity_band,
    total_score,
)


def items_of(rule: ScoringRule, value: int | None = 1, **overrides: int | None) -> dict:
    """All scored items of `rule` set to `value`, with overrides as item_<n>=value."""
    items: dict[int, int | None] = dict.fromkeys(rule.scored_items, value)
    for key, val in overrides.items():
        items[int(key.removeprefix("item_"))] = val
    return items


# --- rules ---------------------------------------------------------------------------------


def test_rules_are_keyed_by_instrument_code():
    assert set(RULES) == {"PHQ-9", "PHQ-8", "GAD-7"}
    assert RULES["PHQ-9"] is PHQ9
    assert RULES["PHQ-8"] is PHQ8
    assert RULES["GAD-7"] is GAD7


def test_rule_ranges():
    assert (PHQ9.n_items, PHQ9.scored_items, PHQ9.min_total, PHQ9.max_total) == (
        10,
        tuple(range(1, 10)),
        0,
        27,
    )
    assert (PHQ8.n_items, PHQ8.scored_items, PHQ8.max_total) == (8, tuple(range(1, 9)), 24)
    assert (GAD7.n_items, GAD7.scored_items, GAD7.max_total) == (7, tuple(range(1, 8)), 21)
    assert PHQ9.required_items == (9,)
    assert (PHQ9.min_answered, PHQ8.min_answered, GAD7.min_answered) == (7, 8, 6)


def test_rule_is_frozen():
    with pytest.raises(FrozenInstanceError):
        PHQ9.min_answered = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bands": ((0, 4, "minimal"), (6, 27, "severe"))}, "contiguous"),
        ({"bands": ((0, 4, "minimal"), (5, 26, "severe"))}, "end at 27"),
        ({"min_answered": 10}, "min_answered"),
        ({"min_answered": 0}, "min_answered"),
        ({"required_items": (10,)}, "required_items"),
        ({"scored_items": (1, 2, 11)}, "scored_items"),
        ({"scored_items": (2, 1)}, "ascending"),
    ],
)
def test_inconsistent_rule_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        replace(PHQ9, **change)


# --- round_half_up -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0.5, 1),
        (1.5, 2),
        (2.5, 3),
        (3.5, 4),
        (10.5, 11),
        (2.4999, 2),
        (2.5001, 3),
        (0.49999999999999994, 0),  # largest float below 0.5: not pushed up
        (0.0, 0),
        (27, 27),
        (-2.5, -3),  # halves away from zero
        (Decimal("4.5"), 5),
    ],
)
def test_round_half_up(x, expected):
    assert round_half_up(x) == expected


def test_round_half_up_differs_from_bankers_rounding():
    assert round(2.5) == 2
    assert round_half_up(2.5) == 3


@pytest.mark.parametrize("x", [float("nan"), float("inf"), float("-inf")])
def test_round_half_up_rejects_non_finite(x):
    with pytest.raises(ValueError, match="cannot round"):
        round_half_up(x)


# --- total_score ---------------------------------------------------------------------------


def test_phq9_total_is_sum_of_items_1_to_9_only():
    items = {1: 1, 2: 2, 3: 0, 4: 1, 5: 3, 6: 0, 7: 2, 8: 1, 9: 0, 10: 3}
    assert total_score(items, PHQ9) == 10


def test_phq9_item_10_never_added():
    base = items_of(PHQ9, 1)
    assert total_score(base, PHQ9) == 9
    for difficulty in (None, 0, 1, 2, 3):
        assert total_score({**base, 10: difficulty}, PHQ9) == 9
        assert prorated_total({**base, 10: difficulty}, PHQ9).total == 9


def test_phq9_item_10_missing_does_not_block_or_prorate():
    result = prorated_total({**items_of(PHQ9, 2), 10: None}, PHQ9)
    assert result == ScoreResult(total=18, prorated=False, items_answered=9, severity="moderately severe")


@pytest.mark.parametrize(("rule", "maximum"), [(PHQ9, 27), (PHQ8, 24), (GAD7, 21)])
def test_total_extremes(rule, maximum):
    assert total_score(items_of(rule, 0), rule) == 0
    assert total_score(items_of(rule, 3), rule) == maximum


@pytest.mark.parametrize("rule", [PHQ9, PHQ8, GAD7])
def test_total_is_none_when_any_scored_item_missing(rule):
    for item in rule.scored_items:
        assert total_score(items_of(rule, 3, **{f"item_{item}": None}), rule) is None
        absent = items_of(rule, 3)
        del absent[item]
        assert total_score(absent, rule) is None


def test_missing_never_treated_as_zero():
    # Item 9 missing and the rest at 3: a 0 would give 24; the total is missing instead.
    items = items_of(PHQ9, 3, item_9=None)
    assert total_score(items, PHQ9) is None
    assert prorated_total(items, PHQ9).total is None
    # GAD-7 with one missing item prorates to 21, not 18 (= 6 x 3 + 0).
    assert prorated_total(items_of(GAD7, 3, item_4=None), GAD7).total == 21
    # PHQ-8 with one missing item: missing by default, never 21 (= 7 x 3 + 0).
    assert prorated_total(items_of(PHQ8, 3, item_8=None), PHQ8).total is None


# --- invalid responses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "items", "pattern"),
    [
        (PHQ9, {11: 1}, r"PHQ-9 item 11: unknown item number"),
        (PHQ9, {0: 1}, r"PHQ-9 item 0: unknown item number"),
        (GAD7, {8: 1}, r"GAD-7 item 8: unknown item number"),
        (PHQ8, {9: 0}, r"PHQ-8 item 9: unknown item number"),
        (PHQ9, {"1": 1}, r"PHQ-9 item '1': unknown item number"),
        (PHQ9, {True: 1}, r"PHQ-9 item True: unknown item number"),
        (PHQ9, {3: 4}, r"PHQ-9 item 3: response 4 outside 0-3"),
        (PHQ9, {3: -1}, r"PHQ-9 item 3: response -1 outside 0-3"),
        (PHQ9, {10: 4}, r"PHQ-9 item 10: response 4 outside 0-3"),
        (GAD7, {2: 2.0}, r"GAD-7 item 2: response 2.0 \(float\) is not an integer"),
        (GAD7, {2: 1.5}, r"GAD-7 item 2: response 1.5 \(float\) is not an integer"),
        (GAD7, {2: "2"}, r"GAD-7 item 2: response '2' \(str\) is not an integer"),
        (GAD7, {2: True}, r"GAD-7 item 2: response True \(bool\) is not an integer"),
        (PHQ8, {5: False}, r"PHQ-8 item 5: response False \(bool\) is not an integer"),
        (PHQ9, {9: float("nan")}, r"PHQ-9 item 9: response nan \(float\) is not an integer"),
    ],
)
def test_invalid_responses_rejected_naming_item_and_rule(rule, items, pattern):
    for fn in (total_score, prorated_total):
        with pytest.raises(ItemResponseError, match=pattern):
            fn(items, rule)


def test_item_response_error_is_a_value_error():
    assert issubclass(ItemResponseError, ValueError)


def test_numpy_integers_accepted_numpy_bool_rejected():
    items = {i: np.int64(2) for i in GAD7.scored_items}
    assert total_score(items, GAD7) == 14
    with pytest.raises(ItemResponseError, match="GAD-7 item 1"):
        total_score({1: np.bool_(True)}, GAD7)


# --- severity bands ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "label"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately severe"),
        (19, "moderately severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_phq9_band_edges(total, label):
    assert severity_band(total, PHQ9) == label


@pytest.mark.parametrize(
    ("total", "label"),
    [(4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate")]
    + [(15, "moderately severe"), (19, "moderately severe"), (20, "severe"), (24, "severe")],
)
def test_phq8_band_edges(total, label):
    assert severity_band(total, PHQ8) == label


@pytest.mark.parametrize(
    ("total", "label"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_band_edges(total, label):
    assert severity_band(total, GAD7) == label


def test_gad7_has_no_moderately_severe_band():
    assert GAD7.band_labels == ("minimal", "mild", "moderate", "severe")


@pytest.mark.parametrize(("rule", "total"), [(PHQ9, 28), (PHQ9, -1), (PHQ8, 25), (GAD7, 22)])
def test_out_of_range_total_raises(rule, total):
    with pytest.raises(ValueError, match=f"{rule.code}: total {total} outside"):
        severity_band(total, rule)


@pytest.mark.parametrize("total", [True, 4.0, "4"])
def test_non_integer_total_raises(total):
    with pytest.raises(ValueError, match="PHQ-9: total .* is not an integer"):
        severity_band(total, PHQ9)


def test_missing_total_has_no_band():
    assert severity_band(None, PHQ9) is None


# --- prorating -----------------------------------------------------------------------------


def test_phq9_seven_of_nine_with_item_9_is_prorated():
    # Items 1 and 2 missing, items 3-9 at 2: 14 / 7 x 9 = 18.
    items = items_of(PHQ9, 2, item_1=None, item_2=None)
    assert prorated_total(items, PHQ9) == ScoreResult(
        total=18, prorated=True, items_answered=7, severity="moderately severe"
    )


def test_phq9_seven_of_nine_with_item_9_missing_is_none():
    items = items_of(PHQ9, 2, item_1=None, item_9=None)
    assert prorated_total(items, PHQ9) == ScoreResult(
        total=None, prorated=False, items_answered=7, severity=None
    )


def test_phq9_eight_of_nine_with_item_9_missing_is_none():
    items = items_of(PHQ9, 1, item_9=None)
    assert prorated_total(items, PHQ9).total is None


def test_phq9_six_of_nine_is_none():
    items = items_of(PHQ9, 2, item_1=None, item_2=None, item_3=None)
    assert prorated_total(items, PHQ9) == ScoreResult(
        total=None, prorated=False, items_answered=6, severity=None
    )


def test_gad7_six_of_seven_is_prorated():
    # 6 answered at 1: 6 / 6 x 7 = 7.
    items = items_of(GAD7, 1, item_3=None)
    assert prorated_total(items, GAD7) == ScoreResult(
        total=7, prorated=True, items_answered=6, severity="mild"
    )


def test_gad7_five_of_seven_is_none():
    items = items_of(GAD7, 1, item_3=None, item_7=None)
    assert prorated_total(items, GAD7) == ScoreResult(
        total=None, prorated=False, items_answered=5, severity=None
    )


def test_phq8_is_not_prorated_by_default():
    assert prorated_total(items_of(PHQ8, 2, item_8=None), PHQ8) == ScoreResult(
        total=None, prorated=False, items_answered=7, severity=None
    )


def test_prorating_rule_can_be_overridden_by_a_protocol():
    # A plan allowing one missing PHQ-8 item: 7 answered at 2 gives 14 / 7 x 8 = 16.
    lenient_phq8 = replace(PHQ8, min_answered=7)
    assert prorated_total(items_of(PHQ8, 2, item_8=None), lenient_phq8) == ScoreResult(
        total=16, prorated=True, items_answered=7, severity="moderately severe"
    )
    assert prorated_total(items_of(PHQ8, 2, item_7=None, item_8=None), lenient_phq8).total is None
    lenient_phq9 = replace(PHQ9, required_items=())
    assert prorated_total(items_of(PHQ9, 2, item_9=None), lenient_phq9).total == 18


def test_complete_questionnaire_is_not_flagged_prorated():
    assert prorated_total(items_of(PHQ9, 1), PHQ9) == ScoreResult(
        total=9, prorated=False, items_answered=9, severity="mild"
    )


def test_nothing_answered():
    assert prorated_total({}, PHQ9) == ScoreResult(None, False, 0, None)
    assert prorated_total(dict.fromkeys(range(1, 11)), PHQ9) == ScoreResult(None, False, 0, None)


@pytest.mark.parametrize(
    ("rule", "items", "expected", "bankers"),
    [
        # PHQ-9, item 1 missing, 8 answered summing to 4: 4 / 8 x 9 = 4.5 -> 5 (mild, not minimal).
        (PHQ9, {1: None, 2: 1, 3: 1, 4: 1, 5: 1, 6: 0, 7: 0, 8: 0, 9: 0}, 5, 4),
        # PHQ-9, item 1 missing, sum 20: 20 / 8 x 9 = 22.5 -> 23.
        (PHQ9, {1: None, 2: 3, 3: 3, 4: 3, 5: 3, 6: 3, 7: 3, 8: 1, 9: 1}, 23, 22),
        # GAD-7, item 7 missing, sum 9: 9 / 6 x 7 = 10.5 -> 11.
        (GAD7, {1: 2, 2: 1, 3: 2, 4: 1, 5: 2, 6: 1, 7: None}, 11, 10),
        # GAD-7, item 1 missing, sum 3: 3 / 6 x 7 = 3.5 -> 4.
        (GAD7, {1: None, 2: 1, 3: 1, 4: 1, 5: 0, 6: 0, 7: 0}, 4, 4),
    ],
)
def test_prorated_halves_round_up(rule, items, expected, bankers):
    answered = [v for v in items.values() if v is not None]
    exact = Fraction(sum(answered), len(answered)) * rule.n_scored
    assert exact.denominator == 2  # the case really is a half
    assert round(exact) == bankers
    result = prorated_total(items, rule)
    assert result.total == expected
    assert result.prorated is True


def test_prorated_total_gets_the_band_of_the_rounded_total():
    items = {1: None, 2: 1, 3: 1, 4: 1, 5: 1, 6: 0, 7: 0, 8: 0, 9: 0}
    assert prorated_total(items, PHQ9).severity == "mild"


def test_to_frame_matches_score_frame_columns():
    frame = prorated_total(items_of(GAD7, 2, item_1=None), GAD7).to_frame()
    assert tuple(frame.columns) == SCORE_COLUMNS
    assert frame.iloc[0].to_dict() == {
        "total": 14,
        "prorated": True,
        "items_answered": 6,
        "severity": "moderate",
    }
    empty = ScoreResult(None, False, 3, None).to_frame()
    assert empty["total"].isna().all()
    assert empty["severity"].iloc[0] is None


# --- score_frame ---------------------------------------------------------------------------


def phq9_frame() -> pd.DataFrame:
    rows = [
        {**items_of(PHQ9, 1), 10: 3},  # complete, 9
        items_of(PHQ9, 2, item_1=None, item_2=None),  # 7 of 9 with item 9: 18
        items_of(PHQ9, 2, item_1=None, item_9=None),  # item 9 missing: None
        items_of(PHQ9, 2, item_1=None, item_2=None, item_3=None),  # 6 of 9: None
        {1: None, 2: 1, 3: 1, 4: 1, 5: 1, 6: 0, 7: 0, 8: 0, 9: 0},  # 4.5 -> 5
    ]
    frame = pd.DataFrame(
        [{f"item{i}": row.get(i) for i in range(1, 11)} for row in rows],
        index=pd.Index(["a", "b", "c", "d", "e"], name="assessment"),
    )
    return frame


def test_score_frame_phq9():
    out = score_frame(phq9_frame(), PHQ9)
    assert tuple(out.columns) == SCORE_COLUMNS
    assert out.index.equals(phq9_frame().index)
    assert str(out["total"].dtype) == "Int64"
    assert out["total"].tolist() == [9, 18, pd.NA, pd.NA, 5]
    assert out["prorated"].tolist() == [False, True, False, False, True]
    assert out["items_answered"].tolist() == [9, 7, 7, 6, 8]
    assert out["severity"].tolist() == ["mild", "moderately severe", None, None, "mild"]


def test_score_frame_without_prorating():
    out = score_frame(phq9_frame(), PHQ9, prorate=False)
    assert out["total"].tolist() == [9, pd.NA, pd.NA, pd.NA, pd.NA]
    assert not out["prorated"].any()
    assert out["items_answered"].tolist() == [9, 7, 7, 6, 8]


def test_score_frame_never_adds_item_10():
    frame = phq9_frame()
    columns = {i: f"item{i}" for i in range(1, 11)}
    with_10 = score_frame(frame, PHQ9, item_columns=columns)
    without = score_frame(frame.drop(columns="item10"), PHQ9)
    pd.testing.assert_frame_equal(with_10, without)


def test_score_frame_custom_columns_and_nullable_dtype():
    frame = pd.DataFrame({f"GAD0{200 + i}": pd.array([3, None], dtype="Int64") for i in range(1, 8)})
    out = score_frame(frame, GAD7, item_columns={i: f"GAD0{200 + i}" for i in range(1, 8)})
    assert out["total"].tolist() == [21, pd.NA]
    assert out["items_answered"].tolist() == [7, 0]


def test_score_frame_object_columns_with_none():
    frame = pd.DataFrame({f"item{i}": pd.Series([1, None], dtype=object) for i in range(1, 8)})
    out = score_frame(frame, GAD7)
    assert out["total"].tolist() == [7, pd.NA]


def test_score_frame_empty():
    frame = pd.DataFrame({f"item{i}": pd.Series([], dtype="Int64") for i in range(1, 8)})
    out = score_frame(frame, GAD7)
    assert len(out) == 0
    assert tuple(out.columns) == SCORE_COLUMNS


def test_default_item_columns():
    assert default_item_columns(GAD7) == {i: f"item{i}" for i in range(1, 8)}
    assert 10 not in default_item_columns(PHQ9)


@pytest.mark.parametrize(
    ("column", "values", "pattern"),
    [
        ("item3", [1.0, 2.5], r"PHQ-9 item 3: response 2.5 at row 'b' is not an integer"),
        ("item4", [1, 4], r"PHQ-9 item 4: response 4 at row 'b' outside 0-3"),
        ("item5", [-1, 0], r"PHQ-9 item 5: response -1 at row 'a' outside 0-3"),
        ("item6", [True, False], r"PHQ-9 item 6: column 'item6' is boolean"),
        ("item7", ["1", "2"], r"PHQ-9 item 7: response '1' \(str\) at row 'a'"),
        ("item8", [1, True], r"PHQ-9 item 8: response True \(bool\) at row 'b'"),
        ("item10", [0, 7], r"PHQ-9 item 10: response 7 at row 'b' outside 0-3"),
        ("item2", [1.0, float("inf")], r"PHQ-9 item 2: response inf at row 'b'"),
    ],
)
def test_score_frame_rejects_invalid_values(column, values, pattern):
    frame = pd.DataFrame({f"item{i}": [1, 1] for i in range(1, 11)}, index=["a", "b"])
    frame[column] = pd.Series(
        values, index=frame.index, dtype=object if column in ("item7", "item8") else None
    )
    with pytest.raises(ItemResponseError, match=pattern):
        score_frame(frame, PHQ9, item_columns={i: f"item{i}" for i in range(1, 11)})


def test_score_frame_rejects_unknown_item_and_missing_columns():
    frame = pd.DataFrame({f"item{i}": [1] for i in range(1, 8)})
    with pytest.raises(ItemResponseError, match="GAD-7 item 8: unknown item number"):
        score_frame(frame, GAD7, item_columns={**default_item_columns(GAD7), 8: "item1"})
    with pytest.raises(ValueError, match=r"GAD-7: no column given for scored item\(s\) \[7\]"):
        score_frame(frame, GAD7, item_columns={i: f"item{i}" for i in range(1, 7)})
    with pytest.raises(KeyError, match="item7"):
        score_frame(frame.drop(columns="item7"), GAD7)


# --- PHQ-8 is its own instrument -----------------------------------------------------------


def test_phq8_is_a_separate_rule_not_phq9_without_item_9():
    assert PHQ8 is not PHQ9
    assert PHQ8.max_total == 24
    assert PHQ8.bands[-1] == (20, 24, "severe")
    assert PHQ8.required_items == ()
    # A PHQ-9 submission is not a PHQ-8 one: item 9 does not exist on the PHQ-8.
    with pytest.raises(ItemResponseError, match="PHQ-8 item 9: unknown item number"):
        prorated_total(items_of(PHQ9, 1), PHQ8)


def test_phq8_rule_is_written_out_not_derived_from_phq9():
    tree = ast.parse(inspect.getsource(scoring))
    (assign,) = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "PHQ8" for t in node.targets)
    ]
    call = assign.value
    assert isinstance(call, ast.Call)
    assert isinstance(call.func, ast.Name)
    assert call.func.id == "ScoringRule"
    names = {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
    assert "PHQ9" not in names
    assert "replace" not in names


# --- properties ----------------------------------------------------------------------------

RULE_LIST = [PHQ9, PHQ8, GAD7]
response = st.one_of(st.none(), st.integers(min_value=0, max_value=3))


@st.composite
def questionnaires(draw, rule: ScoringRule | None = None):
    rule = rule if rule is not None else draw(st.sampled_from(RULE_LIST))
    items = {item: draw(response) for item in rule.scored_items}
    if rule is PHQ9:
        items[10] = draw(response)
    return rule, items


@given(questionnaires())
def test_property_total_in_range_and_equals_sum_when_complete(case):
    rule, items = case
    total = total_score(items, rule)
    scored = [items[i] for i in rule.scored_items]
    if any(v is None for v in scored):
        assert total is None
    else:
        assert total == sum(scored)
        assert rule.min_total <= total <= rule.max_total


@given(questionnaires())
def test_property_prorated_total(case):
    rule, items = case
    result = prorated_total(items, rule)
    answered = [items[i] for i in rule.scored_items if items[i] is not None]
    assert result.items_answered == len(answered)
    if len(answered) == rule.n_scored:
        assert result.total == sum(answered) == total_score(items, rule)
        assert result.prorated is False
    if result.total is None:
        assert result.prorated is False
        assert result.severity is None
    else:
        assert rule.min_total <= result.total <= rule.max_total
        assert result.severity == severity_band(result.total, rule)
        assert result.total == round_half_up(sum(answered) / len(answered) * rule.n_scored)
        # Prorating never lands further than half a point from the exact rescaled mean.
        assert abs(result.total - Fraction(sum(answered), len(answered)) * rule.n_scored) <= Fraction(1, 2)
    if result.prorated:
        assert rule.min_answered <= len(answered) < rule.n_scored
        assert all(items[i] is not None for i in rule.required_items)


@given(st.sampled_from(RULE_LIST), st.data())
def test_property_band_monotone_in_total(rule, data):
    t1 = data.draw(st.integers(rule.min_total, rule.max_total))
    t2 = data.draw(st.integers(t1, rule.max_total))
    labels = rule.band_labels
    assert labels.index(severity_band(t1, rule)) <= labels.index(severity_band(t2, rule))


@settings(deadline=None)
@given(
    st.sampled_from(RULE_LIST).flatmap(
        lambda rule: st.tuples(
            st.just(rule),
            st.lists(questionnaires(rule).map(lambda case: case[1]), max_size=30),
            st.booleans(),
        )
    )
)
def test_property_score_frame_agrees_with_scalar(case):
    rule, rows, prorate = case
    columns = {i: f"q{i}" for i in range(1, rule.n_items + 1)}
    frame = pd.DataFrame(
        [{columns[i]: row.get(i) for i in columns} for row in rows],
        columns=list(columns.values()),
        dtype=object,
    )
    out = score_frame(frame, rule, item_columns=columns, prorate=prorate)
    assert len(out) == len(rows)
    for (_, got), row in zip(out.iterrows(), rows, strict=True):
        if prorate:
            expected = prorated_total(row, rule)
        else:
            total = total_score(row, rule)
            answered = sum(row[i] is not None for i in rule.scored_items)
            expected = ScoreResult(total, False, answered, severity_band(total, rule))
        total_value = None if pd.isna(got["total"]) else int(got["total"])
        assert (
            total_value,
            bool(got["prorated"]),
            int(got["items_answered"]),
            got["severity"],
        ) == (
            expected.total,
            expected.prorated,
            expected.items_answered,
            expected.severity,
        )
