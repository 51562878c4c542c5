# Sources of the expected values in this file:
# - tests/analysis/reference/multiplicity_expected.json, written by multiplicity.R with R 4.2.2:
#   p.adjust(method = "holm"), and cummax() for the fixed-sequence adjusted p-values.
# - Holm S. Scand J Stat 1979;6:65-70 (step-down rule) and the fixed-sequence principle
#   (Maurer, Hothorn & Lehmacher 1995): testing stops at the first non-rejection.
# Tolerance 1e-12: the adjustments are products and maxima of the inputs.

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.multiplicity import fixed_sequence, holm

REF = Path(__file__).parent / "reference"
EXPECTED = json.loads((REF / "multiplicity_expected.json").read_text())
TOL = 1e-12


def family(p: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"hypothesis": [f"H{i + 1}" for i in range(len(p))], "p_value": p})


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_holm_against_R_p_adjust(case):
    exp = EXPECTED[case]
    result = holm(family(exp["p"]))
    assert [d.adjusted_p for d in result.decisions] == pytest.approx(exp["holm"], abs=TOL)
    assert [d.rejected for d in result.decisions] == [a <= 0.05 for a in exp["holm"]]
    assert [d.raw_p for d in result.decisions] == exp["p"]


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_fixed_sequence_against_R_cummax(case):
    exp = EXPECTED[case]
    result = fixed_sequence(family(exp["p"]))
    assert [d.adjusted_p for d in result.decisions] == pytest.approx(exp["fixed_sequence"], abs=TOL)
    assert [d.rejected for d in result.decisions] == exp["fixed_rejected"]


def test_fixed_sequence_stops_at_the_first_non_rejection():
    # H3's p-value is tiny, but H2 was not rejected: H3 and H4 are not tested
    result = fixed_sequence(family([0.001, 0.070, 0.002, 0.003]))
    assert [d.tested for d in result.decisions] == [True, True, False, False]
    assert [d.rejected for d in result.decisions] == [True, False, False, False]
    frame = result.to_frame()
    assert list(frame.columns) == ["hypothesis", "position", "raw_p", "adjusted_p", "tested", "rejected"]


def test_holm_step_down_marks_hypotheses_not_reached():
    result = holm(family([0.012, 0.030, 0.004, 0.20, 0.049]))
    # sorted: H3 0.004*5, H1 0.012*4, H2 0.030*3 = 0.09 > 0.05: stop; H5 and H4 not reached
    assert [d.rejected for d in result.decisions] == [True, False, True, False, False]
    assert [d.tested for d in result.decisions] == [True, True, True, False, False]


def test_alpha_is_respected():
    result = fixed_sequence(family([0.02, 0.04]), alpha=0.025)
    assert [d.rejected for d in result.decisions] == [True, False]
    assert result.alpha == 0.025


@pytest.mark.parametrize("bad", [[0.01, None], [0.01, 1.2], [0.01, -0.1]])
def test_missing_or_impossible_p_values_are_refused(bad):
    with pytest.raises(ValueError, match="p-value"):
        holm(family(bad))


def test_repeated_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        fixed_sequence(pd.DataFrame({"hypothesis": ["H1", "H1"], "p_value": [0.01, 0.02]}))
