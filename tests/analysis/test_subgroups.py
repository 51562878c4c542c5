# Sources of the expected values in this file:
# - tests/analysis/reference/binary_expected.json, written by binary.R with R 4.2.2: per-level
#   glm(response ~ arm, binomial) odds ratios of APP vs CTL within each site and each baseline
#   severity level, and the Wald chi-square of the subgroup x arm terms of
#   glm(response ~ subgroup * arm, binomial). For this saturated model the Wald test equals
#   Cochran's Q of the per-level log odds ratios, which is what subgroup_estimates computes.
# Tolerance 1e-6 (absolute).

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.binary import compare_binary, odds_ratios
from analysis.results import Result
from analysis.subgroups import subgroup_estimates

REF = Path(__file__).parent / "reference"
EXPECTED = json.loads((REF / "binary_expected.json").read_text())["subgroups"]
TOL = 1e-6


@pytest.fixture(scope="module")
def two_arms() -> pd.DataFrame:
    d = pd.read_csv(REF / "binary_data.csv")
    return d[d["arm"].isin(["CTL", "APP"])]


def unadjusted_or(frame: pd.DataFrame) -> Result:
    return odds_ratios(frame, outcome="response", arm="arm", reference="CTL")[0]


@pytest.mark.parametrize("subgroup", ["site", "severity"])
def test_subgroup_odds_ratios_and_interaction_against_R_glm(two_arms, subgroup):
    result = subgroup_estimates(two_arms, subgroup=subgroup, estimator=unadjusted_or, scale="ratio")
    exp = EXPECTED[subgroup]
    assert [lv.level for lv in result.levels] == [e["level"] for e in exp["levels"]]
    for lv, e in zip(result.levels, exp["levels"], strict=True):
        assert lv.result.estimate == pytest.approx(e["estimate"], abs=TOL)
        assert lv.result.ci_low == pytest.approx(e["lower"], abs=TOL)
        assert lv.result.ci_high == pytest.approx(e["upper"], abs=TOL)
        assert lv.result.n == e["n"]
    assert result.interaction.estimate == pytest.approx(exp["interaction_chisq"], abs=TOL)
    assert result.interaction.df == exp["interaction_df"]
    assert result.interaction.p_value == pytest.approx(exp["interaction_p"], abs=TOL)


def test_forest_plot_frame_has_overall_then_levels(two_arms):
    result = subgroup_estimates(two_arms, subgroup="site", estimator=unadjusted_or, scale="ratio")
    frame = result.to_frame()
    assert list(frame.columns) == ["subgroup", "level", "n", "estimate", "ci_low", "ci_high", "p_value"]
    assert frame["level"].tolist() == ["overall", "S01", "S02", "S03"]
    assert frame.attrs["interaction_p"] == result.interaction.p_value


def test_subgroups_on_the_difference_scale_and_a_supplied_test(two_arms):
    def rd(frame: pd.DataFrame) -> Result:
        return (
            compare_binary(frame, outcome="response", arm="arm", reference="CTL", outcome_is_favourable=True)
            .comparisons[0]
            .risk_difference
        )

    result = subgroup_estimates(
        two_arms,
        subgroup="severity",
        estimator=rd,
        scale="difference",
        interaction_test=lambda f: (1.0, 1.0, 0.3),
    )
    assert result.interaction.p_value == 0.3
    assert result.interaction.method == "supplied interaction test"
    assert result.overall.estimate == pytest.approx(rd(two_arms).estimate)


def test_a_level_without_an_estimate_is_reported_and_left_out(two_arms):
    frame = two_arms.copy()
    frame.loc[frame.index[:3], "site"] = "S99"
    frame.loc[frame.index[:3], "arm"] = "CTL"  # S99 has no APP participant: no odds ratio
    result = subgroup_estimates(frame, subgroup="site", estimator=unadjusted_or, scale="ratio")
    s99 = next(lv for lv in result.levels if lv.level == "S99")
    assert math.isnan(s99.result.estimate)
    assert "not estimable" in s99.result.notes[0]
    assert result.interaction.df == 2
    assert "S99" in result.interaction.notes[0]
