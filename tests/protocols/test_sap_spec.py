"""The example protocol's analysis plan converts into the specifications `analysis` reads."""

import pytest

from analysis.datasets import ProratingSpec, VisitSpec
from analysis.sap import StrategySpec
from protocols.document import load_example_protocol, parse_protocol
from protocols.sap_spec import dataset_spec_of, sap_spec_of


def test_the_example_protocol_converts_into_a_sap_spec() -> None:
    spec = sap_spec_of(load_example_protocol())
    assert spec.trial == "MOOD-CBT-01"
    assert [(a.code, a.has_app) for a in spec.arms] == [("CBT", True), ("ATTN", True), ("WAIT", False)]
    assert spec.baseline_visit == "BL"
    assert spec.visits == ("W02", "W04", "W06", "W08", "W12")
    assert spec.visit_days == (14, 28, 42, 56, 84)
    endpoints = {e.code: e for e in spec.endpoints}
    assert (endpoints["PHQ9_CHG_W8"].type, endpoints["PHQ9_CHG_W8"].paramcd) == (
        "continuous_change",
        "PHQ9TOT",
    )
    assert endpoints["GAD7_CHG_W8"].paramcd == "GAD7TOT"
    assert (endpoints["PHQ9_RESP_W8"].type, endpoints["PHQ9_RESP_W8"].visit) == ("responder", "W08")
    assert endpoints["PHQ9_REMIT_W8"].type == "remission"
    response = endpoints["TT_RESPONSE"]
    assert (response.paramcd, response.day, response.favourable, response.all_arms) == (
        "TTRESP",
        84,
        True,
        True,
    )
    stopping = endpoints["TT_STOP_APP"]
    # the waitlist has no app: stopping use exists in two arms only, and is to be avoided
    assert (stopping.paramcd, stopping.favourable, stopping.all_arms) == ("TTSTOPAP", False, False)
    primary = spec.estimand(spec.primary_estimand)
    assert (primary.code, primary.endpoint, primary.experimental, primary.control, primary.population) == (
        "E1_PRIMARY",
        "PHQ9_CHG_W8",
        "CBT",
        "ATTN",
        "FAS",
    )
    assert StrategySpec("NEW_TREATMENT", "hypothetical") in spec.estimand("E1_HYPOTHETICAL").strategies
    assert spec.estimand("E2_VS_WAITLIST").control == "WAIT"
    assert {(p.code, p.flag) for p in spec.populations} == {
        ("FAS", "fasfl"),
        ("PP", "pprotfl"),
        ("SAF", "saffl"),
    }
    events = {e.code: e.columns for e in spec.intercurrent_events}
    assert events["NEW_TREATMENT"] == ("started_other_treatment_on", "changed_other_treatment_on")
    assert events["WITHDRAWAL"] == ("withdrawal_on",)
    assert spec.covariates == ("baseline", "baseline_by_visit", "site", "baseline_severity")
    assert spec.strata == ("site", "baseline_severity")
    assert spec.hierarchy[0] == "PHQ9_CHG_W8"
    assert len(spec.hierarchy) == 6
    assert spec.hierarchy_procedure == "fixed_sequence"
    assert (spec.alpha, spec.df_method) == (0.05, "satterthwaite")
    assert [(s.code, s.estimand, s.covariates) for s in spec.supportive] == [
        ("ANCOVA_W8", "E1_PRIMARY", ("baseline", "site", "baseline_severity"))
    ]
    assert (spec.imputations, spec.imputation_seed) == (50, 20250114)
    assert spec.tipping_deltas == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    assert spec.without_prorating is True


def test_the_example_protocol_converts_into_a_dataset_spec() -> None:
    spec = dataset_spec_of(load_example_protocol())
    assert spec.visits[0] == VisitSpec("BL", 0, -14, 0)
    assert spec.visits[4] == VisitSpec("W08", 56, 49, 63)
    assert (spec.window_rule, spec.tie_break) == ("closest_to_target", "earlier")
    assert spec.prorate is True
    assert spec.prorating == {"PHQ-9": ProratingSpec(7, (9,)), "GAD-7": ProratingSpec(6, ())}
    assert spec.scoring_rule("PHQ-8").min_answered == 8  # no rule in the plan: never prorated
    assert spec.response_reduction_percent == 50
    assert spec.remission_below == {"PHQ-9": 5, "GAD-7": 5}
    assert (spec.treatment_end_day, spec.follow_up_day, spec.stop_app_gap_days) == (56, 84, 14)
    assert spec.app_arms == frozenset({"CBT", "ATTN"})
    assert (spec.pp_min_modules, spec.pp_by_day, spec.pp_visit) == (4, 56, "W08")


def _edited(old: str, new: str) -> bytes:
    from protocols.document import example_protocol_path

    text = example_protocol_path().read_text()
    assert old in text
    return text.replace(old, new, 1).encode()


def test_the_plans_windowing_and_prorating_choices_are_carried_over() -> None:
    text = _edited(
        "  visit_windowing:\n    rule: closest_to_target\n",
        "  prorating:\n    rules:\n      PHQ-9: {min_items_answered: 8, required_items: [1, 9]}\n"
        "  visit_windowing:\n    rule: last_in_window\n",
    )
    spec = dataset_spec_of(parse_protocol(text, format="yaml"))
    assert spec.window_rule == "last_in_window"
    assert spec.prorating == {"PHQ-9": ProratingSpec(8, (1, 9))}
    assert spec.scoring_rule("GAD-7").min_answered == 7  # the plan gives GAD-7 no rule


def test_an_unknown_intercurrent_event_code_has_no_data_source() -> None:
    text = _edited("  - code: CRISIS\n", "  - code: RELAPSE\n")
    text = text.replace(b"event: CRISIS", b"event: RELAPSE").replace(b"{event: CRISIS,", b"{event: RELAPSE,")
    spec = sap_spec_of(parse_protocol(text, format="yaml"))
    assert {e.code: e.columns for e in spec.intercurrent_events}["RELAPSE"] == ()


def test_time_to_response_on_another_instrument_is_refused() -> None:
    text = _edited(
        "    event: first_response\n    instrument: PHQ-9\n",
        "    event: first_response\n    instrument: GAD-7\n",
    )
    with pytest.raises(ValueError, match="PHQ-9 only"):
        sap_spec_of(parse_protocol(text, format="yaml"))
