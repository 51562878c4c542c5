"""Invalid protocol documents, each breaking exactly one rule, for reuse by API/web/CLI tests.

Each case is ``(case_id, mutation, expected_path, expected_rule)``. ``mutation`` is either a
function that changes the example document's data (loaded from YAML into plain dicts and lists)
in place, or the raw text of a document. :func:`case_text` turns a case into document text; the
parser must then report exactly one error, with ``expected_path`` and ``expected_rule``.
"""

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

import yaml

from protocols.document import example_protocol_path

Data = dict[str, Any]

EXAMPLE_TEXT = example_protocol_path().read_text(encoding="utf-8")
_EXAMPLE_DATA: Data = yaml.safe_load(EXAMPLE_TEXT)


class InvalidCase(NamedTuple):
    case_id: str
    mutation: Callable[[Data], None] | str
    expected_path: str
    expected_rule: str


def example_data() -> Data:
    """A fresh deep copy of the example document as plain data."""
    return copy.deepcopy(_EXAMPLE_DATA)


def dump(data: Data) -> str:
    """YAML text of plain data (key order kept)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def mutated(mutation: Callable[[Data], None]) -> str:
    """The example document with one mutation applied, as YAML text."""
    data = example_data()
    mutation(data)
    return dump(data)


def case_text(case: InvalidCase) -> str:
    """The document text of a case."""
    return case.mutation if isinstance(case.mutation, str) else mutated(case.mutation)


def _set(path: str, value: Any) -> Callable[[Data], None]:
    """A mutation setting a dotted path (``arms.1.allocation_ratio``) to ``value``."""
    *parents, last = path.split(".")

    def mutate(data: Data) -> None:
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[Data], None]:
    *parents, last = path.split(".")

    def mutate(data: Data) -> None:
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[int(last) if isinstance(node, list) else last]

    return mutate


def _both(*mutations: Callable[[Data], None]) -> Callable[[Data], None]:
    """Several edits that together break one rule (the others keep the rest valid)."""

    def mutate(data: Data) -> None:
        for mutation in mutations:
            mutation(data)

    return mutate


def _drop_crisis_strategy(data: Data) -> None:
    strategies = data["estimands"][0]["intercurrent_events"]
    data["estimands"][0]["intercurrent_events"] = [s for s in strategies if s["event"] != "CRISIS"]


def _append_undeclared_strategy(data: Data) -> None:
    data["estimands"][0]["intercurrent_events"].append({"event": "RESCUE", "strategy": "hypothetical"})


def _insert_unknown_hierarchy_endpoint(data: Data) -> None:
    data["sap"]["testing_hierarchy"]["endpoints"].insert(2, "PHQ9_RESP_W6")


def _hierarchy_swap_first_two(data: Data) -> None:
    endpoints = data["sap"]["testing_hierarchy"]["endpoints"]
    endpoints[0], endpoints[1] = endpoints[1], endpoints[0]


def _remove_from_hierarchy(data: Data) -> None:
    data["sap"]["testing_hierarchy"]["endpoints"].remove("TT_STOP_APP")


_DUPLICATE_KEY_TEXT = EXAMPLE_TEXT.replace(
    "  short_title: MoodStep RCT\n",
    "  short_title: MoodStep RCT\n  short_title: MoodStep\n",
    1,
)
_ALIAS_TEXT = EXAMPLE_TEXT.replace(
    "    instruments: [PHQ-9, GAD-7]\n", "    instruments: &both [PHQ-9, GAD-7]\n", 1
).replace("    instruments: [PHQ-9, GAD-7]\n", "    instruments: *both\n", 1)

INVALID_CASES: list[InvalidCase] = [
    # --- text level -----------------------------------------------------------------------
    InvalidCase("malformed_yaml", "schema_version: 1\ntrial: {code: [MOOD\n", "", "syntax"),
    InvalidCase("malformed_json", '{"schema_version": 1,}', "", "syntax"),
    InvalidCase("duplicate_yaml_key", _DUPLICATE_KEY_TEXT, "", "duplicate_key"),
    InvalidCase("yaml_alias", _ALIAS_TEXT, "", "alias_not_allowed"),
    InvalidCase("not_a_mapping", "- arms\n- visits\n", "", "not_a_mapping"),
    InvalidCase("empty_document", "# nothing here\n", "", "not_a_mapping"),
    # --- field rules ----------------------------------------------------------------------
    InvalidCase("unknown_field", _set("trial.acronym", "MOOD"), "trial.acronym", "extra_forbidden"),
    InvalidCase("missing_section", _delete("sap"), "sap", "missing"),
    InvalidCase(
        "unsupported_schema_version",
        _set("schema_version", 2),
        "schema_version",
        "unsupported_schema_version",
    ),
    InvalidCase(
        "bad_registry_id",
        _set("trial.registry_id", "NCT1234"),
        "trial.registry_id",
        "string_pattern_mismatch",
    ),
    InvalidCase(
        "lower_case_country",
        _set("sites.0.country", "gb"),
        "sites[0].country",
        "string_pattern_mismatch",
    ),
    InvalidCase("no_arms", _set("arms", []), "arms", "too_short"),
    InvalidCase("one_arm", lambda d: d.update(arms=d["arms"][:1]), "arms", "too_short"),
    InvalidCase(
        "zero_allocation_ratio",
        _set("arms.1.allocation_ratio", 0),
        "arms[1].allocation_ratio",
        "greater_than",
    ),
    InvalidCase(
        "string_for_int",
        _set("arms.0.allocation_ratio", "1"),
        "arms[0].allocation_ratio",
        "int_type",
    ),
    InvalidCase(
        "digital_arm_without_app_version",
        _delete("arms.0.app_version"),
        "arms[0].app_version",
        "required_for_kind",
    ),
    InvalidCase(
        "unknown_instrument",
        lambda d: d["visits"][2]["instruments"].append("BDI-II"),
        "visits[2].instruments[2]",
        "unknown_instrument",
    ),
    InvalidCase(
        "unknown_stratum",
        _set("randomization.strata", ["site", "region"]),
        "randomization.strata[1]",
        "unknown_stratum",
    ),
    InvalidCase(
        "severity_stratum_without_cut_points",
        _set("randomization.severity_cut_points", []),
        "randomization.severity_cut_points",
        "required_for_stratum",
    ),
    InvalidCase(
        "age_min_greater_than_max",
        _set("eligibility.age", {"min": 70, "max": 65}),
        "eligibility.age",
        "range_order",
    ),
    InvalidCase(
        "prorating_more_items_than_the_instrument",
        _set("sap.prorating", {"rules": {"GAD-7": {"min_items_answered": 8}}}),
        "sap.prorating.rules.GAD-7.min_items_answered",
        "prorating_items",
    ),
    InvalidCase(
        "screening_threshold_above_27",
        _set("eligibility.screening_phq9.max", 30),
        "eligibility.screening_phq9.max",
        "less_than_equal",
    ),
    InvalidCase(
        "per_protocol_without_engagement",
        _delete("populations.1.engagement"),
        "populations[1].engagement",
        "required_for_kind",
    ),
    InvalidCase("alpha_zero", _set("sap.alpha", 0.0), "sap.alpha", "greater_than"),
    InvalidCase("alpha_above_one", _set("sap.alpha", 1.5), "sap.alpha", "less_than"),
    InvalidCase(
        "tipping_point_without_imputation",
        _delete("sap.missing_data.multiple_imputation"),
        "sap.missing_data.tipping_point",
        "requires_setting",
    ),
    # --- cross-field rules ----------------------------------------------------------------
    InvalidCase(
        "duplicate_arm_codes",
        # the waitlist estimand is pointed at ATTN so that only the duplicate is wrong
        _both(_set("arms.2.code", "CBT"), _set("estimands.2.treatment.control", "ATTN")),
        "arms[2].code",
        "duplicate_code",
    ),
    InvalidCase("duplicate_visit_codes", _set("visits.1.code", "W04"), "visits[2].code", "duplicate_code"),
    InvalidCase("duplicate_site_codes", _set("sites.2.code", "LDS"), "sites[2].code", "duplicate_code"),
    InvalidCase(
        "overlapping_visit_windows",
        _set("visits.4.window_before", 10),  # W08 from day 46; W06 runs to day 47
        "visits[4]",
        "overlapping_windows",
    ),
    InvalidCase("no_baseline_visit", _set("visits.0.day", -1), "visits", "baseline_count"),
    InvalidCase(
        "primary_endpoint_at_unknown_visit",
        _set("endpoints.0.visit", "W10"),
        "endpoints[0].visit",
        "unknown_visit",
    ),
    InvalidCase(
        "endpoint_instrument_not_collected",
        _set("visits.4.instruments", ["PHQ-9"]),
        "endpoints[1].instrument",
        "instrument_not_collected",
    ),
    InvalidCase(
        "kenward_roger_not_offered",
        _set("sap.primary_analysis.df_method", "kenward_roger"),
        "sap.primary_analysis.df_method",
        "literal_error",
    ),
    InvalidCase(
        "severity_stratum_from_another_instrument",
        _set("randomization.severity_instrument", "GAD-7"),
        "randomization.severity_instrument",
        "screening_instrument",
    ),
    InvalidCase(
        "two_primary_endpoints",
        _set("endpoints.6.level", "primary"),
        "endpoints[6].level",
        "primary_endpoint_count",
    ),
    InvalidCase(
        "no_primary_endpoint",
        _set("endpoints.0.level", "key_secondary"),
        "endpoints",
        "primary_endpoint_count",
    ),
    InvalidCase(
        "intercurrent_event_without_strategy",
        _drop_crisis_strategy,
        "estimands[0].intercurrent_events",
        "missing_strategy",
    ),
    InvalidCase(
        "strategy_for_undeclared_event",
        _append_undeclared_strategy,
        "estimands[0].intercurrent_events[4].event",
        "unknown_intercurrent_event",
    ),
    InvalidCase(
        "estimand_unknown_arm",
        _set("estimands.2.treatment.control", "PLACEBO"),
        "estimands[2].treatment.control",
        "unknown_arm",
    ),
    InvalidCase(
        "estimand_unknown_endpoint",
        _set("estimands.1.endpoint", "PHQ9_CHG_W9"),
        "estimands[1].endpoint",
        "unknown_endpoint",
    ),
    InvalidCase(
        "summary_does_not_fit_endpoint",
        _set("estimands.4.population_level_summary.measure", "difference_in_means"),
        "estimands[4].population_level_summary.measure",
        "incompatible_summary",
    ),
    InvalidCase(
        "block_size_not_multiple",
        _set("randomization.block_sizes", [3, 4]),
        "randomization.block_sizes[1]",
        "block_size_multiple",
    ),
    InvalidCase(
        "hierarchy_unknown_endpoint",
        _insert_unknown_hierarchy_endpoint,
        "sap.testing_hierarchy.endpoints[2]",
        "unknown_endpoint",
    ),
    InvalidCase(
        "hierarchy_not_starting_with_primary",
        _hierarchy_swap_first_two,
        "sap.testing_hierarchy.endpoints[0]",
        "hierarchy_start",
    ),
    InvalidCase(
        "key_secondary_not_in_hierarchy",
        _remove_from_hierarchy,
        "sap.testing_hierarchy.endpoints",
        "key_secondary_not_tested",
    ),
    InvalidCase(
        "stratum_not_a_covariate",
        _set("sap.primary_analysis.covariates", ["baseline", "baseline_by_visit", "site"]),
        "sap.primary_analysis.covariates",
        "missing_covariate",
    ),
]
