"""The protocol document: a versioned, hashable declaration of a trial and its analysis plan.

A protocol document is YAML (or JSON) validated into :class:`ProtocolDocument`. It declares what
DOMAIN.md section 2 lists: registry identifier, title, design, sponsor, sites, arms with their
allocation ratio, randomization, eligibility, blinding, the visit schedule with windows and the
instruments collected at each visit, endpoints, analysis populations, intercurrent events,
estimands (the five ICH E9(R1) attributes) and the statistical analysis plan (SAP), plus the
safety settings.

Validation is strict: no silent coercion (``"1"`` is not an integer, ``1`` is not a string),
unknown keys are rejected, and cross-field rules (unique codes, references that must exist,
non-overlapping visit windows, one primary endpoint, ...) are checked once every field is valid.
Every error carries the path of the field that broke the rule (``arms[1].allocation_ratio``) and
a short machine rule code (pydantic's error type for field rules such as ``greater_than``, or one
of :data:`RULES` for the cross-field rules).

Public API: :func:`parse_protocol`, :func:`validate_protocol`, :func:`canonical_json`,
:func:`canonical_dict`, :func:`content_hash`, :func:`diff_documents`,
:func:`protocol_json_schema`, :func:`example_protocol_path`, :func:`load_example_protocol`,
:class:`ProtocolDocument`, :class:`ProtocolValidationError`, :class:`FieldError`,
:class:`FieldChange`. The format is documented in ``docs/protocol-format.md``.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NoReturn, Protocol, Self, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from protocols.instruments import INSTRUMENT_CODES, INSTRUMENTS
from trials.core.errors import FieldError, InvalidInput, format_path

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "RULES",
    "SCHEMA_VERSION",
    "AnalysisPlan",
    "Arm",
    "Endpoint",
    "Estimand",
    "FieldChange",
    "FieldError",
    "ProtocolDocument",
    "ProtocolValidationError",
    "Visit",
    "canonical_dict",
    "canonical_json",
    "content_hash",
    "diff_documents",
    "errors_from_validation_error",
    "example_protocol_path",
    "format_path",
    "load_example_protocol",
    "parse_protocol",
    "protocol_json_schema",
    "validate_protocol",
]

SCHEMA_VERSION: Final = 1
"""The only schema version this module reads (``schema_version: 1``)."""

MAX_DOCUMENT_BYTES: Final = 1_000_000
"""Documents larger than this (UTF-8 bytes) are refused before parsing."""

CODE_PATTERN: Final = r"^[A-Z][A-Z0-9_-]{0,19}$"
TRIAL_CODE_PATTERN: Final = r"^[A-Z][A-Z0-9-]{1,19}$"
REGISTRY_ID_PATTERN: Final = (
    r"^(NCT[0-9]{8}|ISRCTN[0-9]{8}|DRKS[0-9]{8}|ACTRN[0-9]{14}"  # ClinicalTrials.gov, ISRCTN, ...
    r"|[0-9]{4}-[0-9]{6}-[0-9]{2}-[0-9]{2})$"  # ... and EU CT numbers (CTIS)
)
COUNTRY_PATTERN: Final = r"^[A-Z]{2}$"
EMAIL_PATTERN: Final = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

STRATIFICATION_FACTORS: Final = frozenset({"site", "baseline_severity"})
# Covariates the platform records (sex is not collected: a plan cannot adjust for it).
COVARIATES: Final = frozenset({"baseline", "baseline_by_visit", "site", "baseline_severity", "age"})

RULES: Final[dict[str, str]] = {
    # rules checked by this module (field rules use pydantic's error types, e.g. greater_than)
    "syntax": "the text is not well-formed YAML or JSON",
    "encoding": "the bytes are not UTF-8",
    "too_large": f"the document is larger than {MAX_DOCUMENT_BYTES} bytes",
    "too_deep": "the document is nested too deeply to be a protocol",
    "duplicate_key": "a mapping repeats a key",
    "alias_not_allowed": "YAML aliases (*name) are not allowed; anchors alone are harmless",
    "not_a_mapping": "the document is empty or not a mapping",
    "unsupported_schema_version": f"schema_version must be {SCHEMA_VERSION}",
    "unknown_instrument": "an instrument code that is not in the instrument catalogue",
    "unknown_stratum": "a stratification factor other than site or baseline_severity",
    "unknown_covariate": "a covariate that the analysis does not know",
    "duplicate_code": "two items of the same list have the same code",
    "duplicate_value": "a list repeats a value",
    "required_for_kind": "a field required by the item's kind is missing",
    "not_allowed_for_kind": "a field given that the item's kind does not use",
    "required_for_type": "a field required by the endpoint type is missing",
    "not_allowed_for_type": "a field given that the endpoint type does not use",
    "required_for_stratum": "baseline_severity stratification without cut points",
    "unused_setting": "a setting given that nothing uses",
    "requires_setting": "a setting that needs another setting",
    "not_increasing": "values must be strictly increasing",
    "range_order": "the minimum of a range is greater than its maximum",
    "prorating_items": "a prorating rule names more items, or other items, than the instrument scores",
    "baseline_count": "there must be exactly one visit at day 0 (the baseline visit)",
    "overlapping_windows": "two visit windows share at least one day",
    "unknown_visit": "a visit code that is not declared",
    "not_post_baseline": "an endpoint visit at or before baseline",
    "instrument_not_collected": "an instrument not collected at a visit where it is needed",
    "undefined_threshold": "a remission endpoint for an instrument without a remission threshold",
    "primary_endpoint_count": "there must be exactly one primary endpoint",
    "population_count": "there must be exactly one full analysis set",
    "unknown_endpoint": "an endpoint code that is not declared",
    "unknown_arm": "an arm code that is not declared",
    "same_arm": "an estimand compares an arm with itself",
    "unknown_population": "a population code that is not declared",
    "unknown_estimand": "an estimand code that is not declared",
    "unknown_intercurrent_event": "an intercurrent event that is not declared",
    "missing_strategy": "a declared intercurrent event without a strategy in an estimand",
    "incompatible_summary": "a population-level summary that does not fit the endpoint type",
    "primary_without_estimand": "no estimand for the primary endpoint",
    "block_size_multiple": "a block size that is not a multiple of the sum of allocation ratios",
    "hierarchy_start": "the testing hierarchy does not start with the primary endpoint",
    "hierarchy_level": "a hierarchy endpoint that is neither primary nor key secondary",
    "key_secondary_not_tested": "a key secondary endpoint missing from the testing hierarchy",
    "missing_estimand": "a hierarchy endpoint without an estimand for the primary comparison",
    "not_primary_endpoint": "the primary analysis estimand is not for the primary endpoint",
    "incompatible_model": "a model that does not fit the endpoint type",
    "missing_covariate": "a model without baseline or a stratification factor as covariate",
}
"""Rule codes raised by this module, with a one-line description each."""


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ProtocolValidationError(InvalidInput):
    """A protocol document was refused; ``errors`` lists every broken rule found.

    An ``InvalidInput``: the web, the API and the CLI report it as field errors (HTTP 422).
    """

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("the protocol document is not valid", errors=list(errors))


def _message(path: str, text: str) -> str:
    return f"{path or 'document'}: {text}"


def errors_from_validation_error(exc: ValidationError) -> list[FieldError]:
    """Convert a pydantic ``ValidationError`` into :class:`FieldError` items, in order."""
    errors = []
    for err in exc.errors(include_url=False):
        path = format_path(err["loc"])
        errors.append(FieldError(path, err["type"], _message(path, err["msg"])))
    return errors


def _document_error(rule: str, text: str) -> ProtocolValidationError:
    return ProtocolValidationError([FieldError("", rule, _message("", text))])


Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class _Issue:
    loc: Loc
    rule: str
    message: str
    value: Any = None


def _raise_issues(title: str, issues: Sequence[_Issue]) -> None:
    """Raise a ValidationError whose line errors carry each issue's exact ``loc``.

    A ValidationError raised inside a validator keeps its line errors (pydantic-core prefixes the
    location of the model being validated), which is how a model validator reports a precise
    path such as ``sap.testing_hierarchy.endpoints[2]`` rather than the model's own location.
    """
    if not issues:
        return
    details = [
        InitErrorDetails(
            type=PydanticCustomError(issue.rule, issue.message.replace("{", "(").replace("}", ")")),
            loc=issue.loc,
            input=issue.value,
        )
        for issue in issues
    ]
    raise ValidationError.from_exception_data(title, details)


# ---------------------------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------------------------


def _known_instrument(value: str) -> str:
    if value not in INSTRUMENT_CODES:
        raise PydanticCustomError(
            "unknown_instrument",
            "unknown instrument '{value}' (known: {known})",
            {"value": value, "known": ", ".join(sorted(INSTRUMENT_CODES))},
        )
    return value


def _known_stratum(value: str) -> str:
    if value not in STRATIFICATION_FACTORS:
        raise PydanticCustomError(
            "unknown_stratum",
            "unknown stratification factor '{value}' (known: {known})",
            {"value": value, "known": ", ".join(sorted(STRATIFICATION_FACTORS))},
        )
    return value


def _known_covariate(value: str) -> str:
    if value not in COVARIATES:
        raise PydanticCustomError(
            "unknown_covariate",
            "unknown covariate '{value}' (known: {known})",
            {"value": value, "known": ", ".join(sorted(COVARIATES))},
        )
    return value


def _supported_version(value: int) -> int:
    if value != SCHEMA_VERSION:
        raise PydanticCustomError(
            "unsupported_schema_version",
            "schema_version {value} is not supported (expected {expected})",
            {"value": value, "expected": SCHEMA_VERSION},
        )
    return value


def _enum_schema(values: Iterable[str]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": sorted(values)})


Code = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=r"\S")]
Country = Annotated[str, StringConstraints(pattern=COUNTRY_PATTERN)]
PositiveInt = Annotated[int, Field(gt=0)]
Score = Annotated[int, Field(ge=0, le=27)]
InstrumentCode = Annotated[str, AfterValidator(_known_instrument), _enum_schema(INSTRUMENT_CODES)]
Stratum = Annotated[str, AfterValidator(_known_stratum), _enum_schema(STRATIFICATION_FACTORS)]
Covariate = Annotated[str, AfterValidator(_known_covariate), _enum_schema(COVARIATES)]
SchemaVersion = Annotated[
    int,
    AfterValidator(_supported_version),
    WithJsonSchema({"type": "integer", "const": SCHEMA_VERSION}),
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

ArmKind = Literal["digital", "attention_control", "waitlist", "usual_care"]
EndpointType = Literal["continuous_change", "responder", "remission", "time_to_event"]
EndpointLevel = Literal["primary", "key_secondary", "secondary", "exploratory"]
TimeToEventKind = Literal["first_response", "first_remission", "stopping_app_use", "withdrawal"]
PopulationKind = Literal["full_analysis", "per_protocol", "safety"]
Strategy = Literal["treatment_policy", "hypothetical", "composite", "while_on_treatment", "principal_stratum"]
SummaryMeasure = Literal[
    "difference_in_means",
    "risk_difference",
    "risk_ratio",
    "odds_ratio",
    "hazard_ratio",
    "difference_in_median_times",
]
BlindedRole = Literal[
    "participant", "investigator", "outcome_assessor", "statistician", "data_manager", "sponsor"
]
Phase = Literal["not_applicable", "pilot", "phase_1", "phase_2", "phase_2_3", "phase_3", "phase_4"]

_SUMMARIES_BY_TYPE: Final[dict[str, frozenset[str]]] = {
    "continuous_change": frozenset({"difference_in_means"}),
    "responder": frozenset({"risk_difference", "risk_ratio", "odds_ratio"}),
    "remission": frozenset({"risk_difference", "risk_ratio", "odds_ratio"}),
    "time_to_event": frozenset({"hazard_ratio", "difference_in_median_times"}),
}
_EVENTS_WITH_INSTRUMENT: Final = frozenset({"first_response", "first_remission"})


def _duplicates(values: Sequence[Any], loc: Loc, what: str) -> list[_Issue]:
    """One issue per repeated value, at the position of each repetition."""
    seen: set[Any] = set()
    issues = []
    for i, value in enumerate(values):
        if value in seen:
            issues.append(_Issue((*loc, i), "duplicate_value", f"{what} '{value}' is listed twice", value))
        seen.add(value)
    return issues


def _increasing(values: Sequence[float], loc: Loc, what: str) -> list[_Issue]:
    issues = []
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            issues.append(
                _Issue(
                    (*loc, i),
                    "not_increasing",
                    f"{what} must be strictly increasing ({values[i]} follows {values[i - 1]})",
                    values[i],
                )
            )
    return issues


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TrialInfo(_Model):
    """Identity of the trial."""

    code: Annotated[str, StringConstraints(pattern=TRIAL_CODE_PATTERN)] = Field(
        description="Short trial code: upper-case letters, digits and hyphens, 2-20 characters."
    )
    registry_id: Annotated[str, StringConstraints(pattern=REGISTRY_ID_PATTERN)] = Field(
        description="Public registry identifier: NCT########, ISRCTN########, DRKS########, "
        "ACTRN############## or an EU CT number (####-######-##-##)."
    )
    title: Annotated[str, StringConstraints(min_length=1, max_length=400, pattern=r"\S")]
    short_title: Name | None = None


class Design(_Model):
    """Trial design; schema version 1 supports parallel-group superiority trials only."""

    allocation: Literal["parallel_group"] = "parallel_group"
    hypothesis: Literal["superiority"] = "superiority"
    phase: Phase | None = None


class Sponsor(_Model):
    name: Name
    country: Country | None = None
    contact_email: Annotated[str, StringConstraints(pattern=EMAIL_PATTERN)] | None = None


class Site(_Model):
    code: Code
    name: Name
    country: Country


class Arm(_Model):
    """A treatment arm. Digital arms name the app and the app version under evaluation."""

    code: Code
    name: Name
    description: Text
    kind: ArmKind
    allocation_ratio: PositiveInt
    app_name: Name | None = None
    app_version: Annotated[str, StringConstraints(pattern=r"^\S{1,40}$")] | None = None

    @model_validator(mode="after")
    def _digital_arm_names_its_app(self) -> Self:
        issues = []
        if self.kind == "digital":
            if self.app_name is None:
                issues.append(_Issue(("app_name",), "required_for_kind", "is required for a digital arm"))
            if self.app_version is None:
                issues.append(_Issue(("app_version",), "required_for_kind", "is required for a digital arm"))
        _raise_issues("Arm", issues)
        return self


class Randomization(_Model):
    """Permuted blocks of varying size, optionally stratified by site and baseline severity."""

    method: Literal["permuted_blocks"] = "permuted_blocks"
    block_sizes: Annotated[list[PositiveInt], Field(min_length=1)]
    strata: list[Stratum] = Field(default_factory=list)
    severity_instrument: InstrumentCode = "PHQ-9"
    severity_cut_points: list[Annotated[int, Field(ge=1, le=27)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        issues = _duplicates(self.block_sizes, ("block_sizes",), "block size")
        issues += _duplicates(self.strata, ("strata",), "stratification factor")
        issues += _increasing(self.severity_cut_points, ("severity_cut_points",), "cut points")
        if "baseline_severity" in self.strata and not self.severity_cut_points:
            issues.append(
                _Issue(
                    ("severity_cut_points",),
                    "required_for_stratum",
                    "at least one cut point is required when baseline_severity is a stratum",
                    [],
                )
            )
        if "baseline_severity" in self.strata and self.severity_instrument != "PHQ-9":
            # The stratum is known at randomization, before any visit: only the screening PHQ-9
            # is recorded by then.
            issues.append(
                _Issue(
                    ("severity_instrument",),
                    "screening_instrument",
                    "the baseline_severity stratum is taken from the screening PHQ-9: "
                    "severity_instrument must be PHQ-9",
                    self.severity_instrument,
                )
            )
        if self.severity_cut_points and "baseline_severity" not in self.strata:
            issues.append(
                _Issue(
                    ("severity_cut_points",),
                    "unused_setting",
                    "cut points are given but baseline_severity is not a stratum",
                    self.severity_cut_points,
                )
            )
        _raise_issues("Randomization", issues)
        return self


class AgeRange(_Model):
    """Age in completed years, both ends inclusive; no ``max`` means no upper limit."""

    min: Annotated[int, Field(ge=0, le=120)]
    max: Annotated[int, Field(ge=0, le=120)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "range_order",
                "min ({min}) is greater than max ({max})",
                {"min": self.min, "max": self.max},
            )
        return self


class ScoreRange(_Model):
    """A PHQ-9 total range (0-27), both ends inclusive; no ``max`` means up to 27."""

    min: Score
    max: Score | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "range_order",
                "min ({min}) is greater than max ({max})",
                {"min": self.min, "max": self.max},
            )
        return self


class Eligibility(_Model):
    age: AgeRange
    screening_phq9: ScoreRange
    inclusion: list[Text] = Field(default_factory=list)
    exclusion: list[Text] = Field(default_factory=list)


class Blinding(_Model):
    """Roles kept blind to allocation; roles not listed are unblinded."""

    blinded_roles: list[BlindedRole] = Field(default_factory=list)
    description: Text | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _raise_issues("Blinding", _duplicates(self.blinded_roles, ("blinded_roles",), "role"))
        return self


class Visit(_Model):
    """A scheduled visit: target day from randomization and an inclusive window around it."""

    code: Code
    name: Name
    day: Annotated[int, Field(ge=-365, le=3650)]
    window_before: Annotated[int, Field(ge=0, le=365)] = 0
    window_after: Annotated[int, Field(ge=0, le=365)] = 0
    instruments: list[InstrumentCode] = Field(default_factory=list)

    @property
    def window(self) -> tuple[int, int]:
        """First and last day (inclusive) of the window."""
        return self.day - self.window_before, self.day + self.window_after

    @model_validator(mode="after")
    def _check(self) -> Self:
        _raise_issues("Visit", _duplicates(self.instruments, ("instruments",), "instrument"))
        return self


class Endpoint(_Model):
    """An endpoint: what is measured (instrument or event), when (visit) and how important."""

    code: Code
    name: Name
    type: EndpointType
    level: EndpointLevel
    instrument: InstrumentCode | None = None
    visit: Code = Field(
        description="For continuous, responder and remission endpoints the assessment visit; "
        "for time-to-event endpoints the end of follow-up (administrative censoring)."
    )
    event: TimeToEventKind | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> Self:
        issues = []
        if self.type == "time_to_event":
            if self.event is None:
                issues.append(_Issue(("event",), "required_for_type", "is required for time_to_event"))
            elif self.event in _EVENTS_WITH_INSTRUMENT and self.instrument is None:
                issues.append(
                    _Issue(
                        ("instrument",),
                        "required_for_type",
                        f"is required for time_to_event with event {self.event}",
                    )
                )
            elif self.event not in _EVENTS_WITH_INSTRUMENT and self.instrument is not None:
                issues.append(
                    _Issue(
                        ("instrument",),
                        "not_allowed_for_type",
                        f"is not used by time_to_event with event {self.event}",
                        self.instrument,
                    )
                )
        else:
            if self.instrument is None:
                issues.append(_Issue(("instrument",), "required_for_type", f"is required for {self.type}"))
            if self.event is not None:
                issues.append(
                    _Issue(
                        ("event",),
                        "not_allowed_for_type",
                        f"is only used by time_to_event endpoints, not {self.type}",
                        self.event,
                    )
                )
        _raise_issues("Endpoint", issues)
        return self


class EngagementRule(_Model):
    """Minimum use of the allocated app for the per-protocol set."""

    min_modules_completed: PositiveInt
    by_visit: Code


class Population(_Model):
    code: Code
    name: Name
    kind: PopulationKind
    definition: Text
    engagement: EngagementRule | None = None

    @model_validator(mode="after")
    def _engagement_for_kind(self) -> Self:
        issues = []
        if self.kind == "per_protocol" and self.engagement is None:
            issues.append(
                _Issue(
                    ("engagement",),
                    "required_for_kind",
                    "is required for a per_protocol population",
                )
            )
        if self.kind != "per_protocol" and self.engagement is not None:
            issues.append(
                _Issue(
                    ("engagement",),
                    "not_allowed_for_kind",
                    f"is only used by per_protocol populations, not {self.kind}",
                )
            )
        _raise_issues("Population", issues)
        return self


class IntercurrentEvent(_Model):
    code: Code
    description: Text


class Treatment(_Model):
    """The treatment attribute: the arm of interest and the arm it is compared with."""

    experimental: Code
    control: Code


class IntercurrentEventStrategy(_Model):
    event: Code
    strategy: Strategy
    rationale: Text | None = None


class PopulationSummary(_Model):
    measure: SummaryMeasure
    description: Text


class Estimand(_Model):
    """An estimand with the five ICH E9(R1) attributes."""

    code: Code
    name: Name
    endpoint: Code
    treatment: Treatment
    population: Code
    variable: Text
    intercurrent_events: list[IntercurrentEventStrategy] = Field(default_factory=list)
    population_level_summary: PopulationSummary


class Hierarchy(_Model):
    """Multiplicity control: the primary endpoint first, then the key secondaries."""

    procedure: Literal["fixed_sequence", "holm"] = "fixed_sequence"
    endpoints: Annotated[list[Code], Field(min_length=1)]


class PrimaryAnalysis(_Model):
    """MMRM on change from baseline (arm, visit and arm-by-visit are always in the model)."""

    estimand: Code
    model: Literal["mmrm"] = "mmrm"
    covariance: Literal["unstructured"] = "unstructured"
    # Kenward-Roger is not offered: no independent reference implementation of it for an
    # unstructured-covariance MMRM is available to validate ours against.
    df_method: Literal["satterthwaite"]
    estimation: Literal["reml"] = "reml"
    covariates: list[Covariate]

    @model_validator(mode="after")
    def _check(self) -> Self:
        _raise_issues("PrimaryAnalysis", _duplicates(self.covariates, ("covariates",), "covariate"))
        return self


class SupportiveAnalysis(_Model):
    """ANCOVA of change at the estimand's endpoint visit (change ~ arm + covariates)."""

    code: Code
    method: Literal["ancova"] = "ancova"
    estimand: Code
    covariates: list[Covariate]

    @model_validator(mode="after")
    def _check(self) -> Self:
        _raise_issues("SupportiveAnalysis", _duplicates(self.covariates, ("covariates",), "covariate"))
        return self


class MultipleImputation(_Model):
    assumption: Literal["mar"] = "mar"
    imputations: Annotated[int, Field(ge=2, le=1000)]
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)]


class TippingPoint(_Model):
    """Delta adjustment (instrument points added to imputed values in the experimental arm)."""

    deltas: Annotated[list[FiniteFloat], Field(min_length=1)]

    @model_validator(mode="after")
    def _check(self) -> Self:
        _raise_issues("TippingPoint", _increasing(self.deltas, ("deltas",), "deltas"))
        return self


class MissingData(_Model):
    primary_assumption: Literal["mar"] = "mar"
    multiple_imputation: MultipleImputation | None = None
    tipping_point: TippingPoint | None = None
    without_prorating: bool = True

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.tipping_point is not None and self.multiple_imputation is None:
            _raise_issues(
                "MissingData",
                [
                    _Issue(
                        ("tipping_point",),
                        "requires_setting",
                        "a tipping-point analysis needs multiple_imputation",
                    )
                ],
            )
        return self


class ProratingRule(_Model):
    """Prorate a total when at least ``min_items_answered`` items and every required item are
    answered: total = round_half_up(mean of answered items x number of items)."""

    min_items_answered: PositiveInt
    required_items: list[PositiveInt] = Field(default_factory=list)


def _default_prorating_rules() -> dict[str, ProratingRule]:
    return {
        "PHQ-9": ProratingRule(min_items_answered=7, required_items=[9]),
        "GAD-7": ProratingRule(min_items_answered=6),
    }


class Prorating(_Model):
    """Instruments without a rule are never prorated (any missing item -> missing total)."""

    enabled: bool = True
    rounding: Literal["half_up"] = "half_up"
    rules: dict[InstrumentCode, ProratingRule] = Field(default_factory=_default_prorating_rules)

    @model_validator(mode="after")
    def _fits_the_instruments(self) -> Self:
        issues = []
        for code, rule in self.rules.items():
            scored = INSTRUMENTS[code].scoring_rule.scored_items
            if rule.min_items_answered > len(scored):
                issues.append(
                    _Issue(
                        ("rules", code, "min_items_answered"),
                        "prorating_items",
                        f"{code} has {len(scored)} scored items, fewer than {rule.min_items_answered}",
                        rule.min_items_answered,
                    )
                )
            for i, item in enumerate(rule.required_items):
                if item not in scored:
                    issues.append(
                        _Issue(
                            ("rules", code, "required_items", i),
                            "prorating_items",
                            f"{code} has no scored item {item}",
                            item,
                        )
                    )
        _raise_issues("Prorating", issues)
        return self


class VisitWindowing(_Model):
    """Which assessment represents a visit when several fall in its window."""

    rule: Literal["closest_to_target", "first_in_window", "last_in_window"] = "closest_to_target"
    tie_break: Literal["earlier", "later"] = "earlier"


class ResponseDefinition(_Model):
    """Response: reduction from baseline of at least this percentage (baseline must be > 0)."""

    min_reduction_percent: Annotated[float, Field(gt=0, le=100)] = 50.0


def _default_remission() -> dict[str, int]:
    return {"PHQ-9": 5, "GAD-7": 5}


def _default_mcid() -> dict[str, float]:
    return {"PHQ-9": 5.0, "GAD-7": 4.0}


class Definitions(_Model):
    response: ResponseDefinition = Field(default_factory=ResponseDefinition)
    remission_below: dict[InstrumentCode, Annotated[int, Field(ge=1, le=27)]] = Field(
        default_factory=_default_remission,
        description="Remission: total strictly below this value.",
    )
    mcid: dict[InstrumentCode, Annotated[float, Field(gt=0, le=27)]] = Field(
        default_factory=_default_mcid,
        description="Minimal clinically important difference, in instrument points.",
    )


class AnalysisPlan(_Model):
    """The statistical analysis plan (SAP)."""

    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    sidedness: Literal["two_sided"] = "two_sided"
    testing_hierarchy: Hierarchy
    primary_analysis: PrimaryAnalysis
    supportive_analyses: list[SupportiveAnalysis] = Field(default_factory=list)
    missing_data: MissingData = Field(default_factory=MissingData)
    prorating: Prorating = Field(default_factory=Prorating)
    visit_windowing: VisitWindowing = Field(default_factory=VisitWindowing)
    definitions: Definitions = Field(default_factory=Definitions)


class SafetySettings(_Model):
    item9_followup_hours: Annotated[int, Field(gt=0, le=168)] = 24
    deterioration_threshold: Annotated[int, Field(ge=1, le=27)] = 6


class ProtocolDocument(_Model):
    """A complete protocol document (schema version 1)."""

    model_config = ConfigDict(title="Protocol document")

    schema_version: SchemaVersion
    trial: TrialInfo
    design: Design = Field(default_factory=Design)
    sponsor: Sponsor
    sites: Annotated[list[Site], Field(min_length=1)]
    arms: Annotated[list[Arm], Field(min_length=2)]
    randomization: Randomization
    eligibility: Eligibility
    blinding: Blinding
    visits: Annotated[list[Visit], Field(min_length=2)]
    endpoints: Annotated[list[Endpoint], Field(min_length=1)]
    populations: Annotated[list[Population], Field(min_length=1)]
    intercurrent_events: list[IntercurrentEvent] = Field(default_factory=list)
    estimands: Annotated[list[Estimand], Field(min_length=1)]
    sap: AnalysisPlan
    safety: SafetySettings = Field(default_factory=SafetySettings)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        _raise_issues("ProtocolDocument", list(_cross_field_issues(self)))
        return self

    # Convenience look-ups used by services and reports.
    def arm(self, code: str) -> Arm:
        return _by_code(self.arms, code)

    def visit(self, code: str) -> Visit:
        return _by_code(self.visits, code)

    def endpoint(self, code: str) -> Endpoint:
        return _by_code(self.endpoints, code)

    def estimand(self, code: str) -> Estimand:
        return _by_code(self.estimands, code)

    @property
    def baseline_visit(self) -> Visit:
        return next(v for v in self.visits if v.day == 0)

    @property
    def primary_endpoint(self) -> Endpoint:
        return next(e for e in self.endpoints if e.level == "primary")


class _HasCode(Protocol):
    @property
    def code(self) -> str: ...


_T = TypeVar("_T", bound=_HasCode)


def _by_code(items: Sequence[_T], code: str) -> _T:
    for item in items:
        if item.code == code:
            return item
    raise KeyError(code)


# ---------------------------------------------------------------------------------------------
# Cross-field rules
# ---------------------------------------------------------------------------------------------


def _first_index(codes: Sequence[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, code in enumerate(codes):
        index.setdefault(code, i)
    return index


def _duplicate_codes(name: str, codes: Sequence[str], loc: Loc | None = None) -> Iterator[_Issue]:
    first = _first_index(codes)
    base = loc if loc is not None else (name,)
    for i, code in enumerate(codes):
        if first[code] != i:
            yield _Issue(
                (*base, i, "code"),
                "duplicate_code",
                f"code '{code}' is already used by {format_path((*base, first[code]))}",
                code,
            )


def _cross_field_issues(doc: ProtocolDocument) -> Iterator[_Issue]:
    for name in ("sites", "arms", "visits", "endpoints", "populations", "intercurrent_events"):
        yield from _duplicate_codes(name, [item.code for item in getattr(doc, name)])
    yield from _duplicate_codes("estimands", [e.code for e in doc.estimands])
    yield from _duplicate_codes(
        "supportive_analyses",
        [a.code for a in doc.sap.supportive_analyses],
        ("sap", "supportive_analyses"),
    )
    yield from _visit_issues(doc)
    yield from _randomization_issues(doc)
    yield from _endpoint_issues(doc)
    yield from _population_issues(doc)
    yield from _estimand_issues(doc)
    yield from _sap_issues(doc)


def _visit_issues(doc: ProtocolDocument) -> Iterator[_Issue]:
    baselines = [i for i, v in enumerate(doc.visits) if v.day == 0]
    if not baselines:
        yield _Issue(("visits",), "baseline_count", "no baseline visit: exactly one visit must be at day 0")
    for i in baselines[1:]:
        yield _Issue(
            ("visits", i, "day"),
            "baseline_count",
            f"a second visit at day 0 ({doc.visits[i].code}); only the baseline visit is at "
            f"day 0 ({doc.visits[baselines[0]].code})",
            0,
        )
    order = sorted(range(len(doc.visits)), key=lambda i: (doc.visits[i].day, i))
    for prev_i, next_i in zip(order, order[1:], strict=False):
        prev, nxt = doc.visits[prev_i], doc.visits[next_i]
        if prev.day == nxt.day == 0:
            continue  # reported as baseline_count
        if nxt.window[0] <= prev.window[1]:
            yield _Issue(
                ("visits", next_i),
                "overlapping_windows",
                f"the window of {nxt.code} (days {nxt.window[0]} to {nxt.window[1]}) overlaps "
                f"the window of {prev.code} (days {prev.window[0]} to {prev.window[1]})",
                nxt.code,
            )


def _collected(doc: ProtocolDocument, instrument: str, visit_code: str) -> bool:
    return any(v.code == visit_code and instrument in v.instruments for v in doc.visits)


def _baseline_code(doc: ProtocolDocument) -> str | None:
    return next((v.code for v in doc.visits if v.day == 0), None)


def _randomization_issues(doc: ProtocolDocument) -> Iterator[_Issue]:
    ratio_sum = sum(arm.allocation_ratio for arm in doc.arms)
    for k, size in enumerate(doc.randomization.block_sizes):
        if size % ratio_sum:
            yield _Issue(
                ("randomization", "block_sizes", k),
                "block_size_multiple",
                f"block size {size} is not a multiple of the sum of allocation ratios ({ratio_sum})",
                size,
            )
    baseline = _baseline_code(doc)
    instrument = doc.randomization.severity_instrument
    if (
        "baseline_severity" in doc.randomization.strata
        and baseline is not None
        and not _collected(doc, instrument, baseline)
    ):
        yield _Issue(
            ("randomization", "severity_instrument"),
            "instrument_not_collected",
            f"{instrument} is not collected at the baseline visit {baseline}",
            instrument,
        )


def _endpoint_issues(doc: ProtocolDocument) -> Iterator[_Issue]:
    days = {v.code: v.day for v in doc.visits}
    baseline = _baseline_code(doc)
    thresholds = doc.sap.definitions.remission_below
    for i, endpoint in enumerate(doc.endpoints):
        if endpoint.visit not in days:
            yield _Issue(
                ("endpoints", i, "visit"),
                "unknown_visit",
                f"visit '{endpoint.visit}' is not declared in visits",
                endpoint.visit,
            )
        elif days[endpoint.visit] <= 0:
            yield _Issue(
                ("endpoints", i, "visit"),
                "not_post_baseline",
                f"visit '{endpoint.visit}' is not after baseline",
                endpoint.visit,
            )
        instrument = endpoint.instrument
        if instrument is None:
            continue
        if endpoint.visit in days and not _collected(doc, instrument, endpoint.visit):
            yield _Issue(
                ("endpoints", i, "instrument"),
                "instrument_not_collected",
                f"{instrument} is not collected at visit {endpoint.visit}",
                instrument,
            )
        elif baseline is not None and not _collected(doc, instrument, baseline):
            yield _Issue(
                ("endpoints", i, "instrument"),
                "instrument_not_collected",
                f"{instrument} is not collected at the baseline visit {baseline}",
                instrument,
            )
        if (
            endpoint.type == "remission" or endpoint.event == "first_remission"
        ) and instrument not in thresholds:
            yield _Issue(
                ("endpoints", i, "instrument"),
                "undefined_threshold",
                f"no remission threshold for {instrument} in sap.definitions.remission_below",
                instrument,
            )
    primaries = [i for i, e in enumerate(doc.endpoints) if e.level == "primary"]
    if not primaries:
        yield _Issue(("endpoints",), "primary_endpoint_count", "no endpoint has level primary")
    for i in primaries[1:]:
        yield _Issue(
            ("endpoints", i, "level"),
            "primary_endpoint_count",
            f"a second primary endpoint ({doc.endpoints[i].code}); "
            f"{doc.endpoints[primaries[0]].code} is already primary",
            "primary",
        )


def _population_issues(doc: ProtocolDocument) -> Iterator[_Issue]:
    visits = {v.code for v in doc.visits}
    full = [i for i, p in enumerate(doc.populations) if p.kind == "full_analysis"]
    if not full:
        yield _Issue(("populations",), "population_count", "no population has kind full_analysis")
    for i in full[1:]:
        yield _Issue(
            ("populations", i, "kind"),
            "population_count",
            "a second full_analysis population",
            "full_analysis",
        )
    for i, population in enumerate(doc.populations):
        rule = population.engagement
        if rule is not None and rule.by_visit not in visits:
            yield _Issue(
                ("populations", i, "engagement", "by_visit"),
                "unknown_visit",
                f"visit '{rule.by_visit}' is not declared in visits",
                rule.by_visit,
            )


def _estimand_issues(doc: ProtocolDocument) -> Iterator[_Issue]:
    endpoints = {e.code: e for e in doc.endpoints}
    arms = {a.code for a in doc.arms}
    populations = {p.code for p in doc.populations}
    events = [e.code for e in doc.intercurrent_events]
    for i, estimand in enumerate(doc.estimands):
        loc: Loc = ("estimands", i)
        endpoint = endpoints.get(estimand.endpoint)
        if endpoint is None:
            yield _Issue(
                (*loc, "endpoint"),
                "unknown_endpoint",
                f"endpoint '{estimand.endpoint}' is not declared in endpoints",
                estimand.endpoint,
            )
        for role in ("experimental", "control"):
            arm = getattr(estimand.treatment, role)
            if arm not in arms:
                yield _Issue(
                    (*loc, "treatment", role),
                    "unknown_arm",
                    f"arm '{arm}' is not declared in arms",
                    arm,
                )
        if estimand.treatment.experimental == estimand.treatment.control:
            yield _Issue(
                (*loc, "treatment", "control"),
                "same_arm",
                "control is the same arm as experimental",
                estimand.treatment.control,
            )
        if estimand.population not in populations:
            yield _Issue(
                (*loc, "population"),
                "unknown_population",
                f"population '{estimand.population}' is not declared in populations",
                estimand.population,
            )
        named = [s.event for s in estimand.intercurrent_events]
        for issue in _duplicates(named, (*loc, "intercurrent_events"), "intercurrent event"):
            yield _Issue((*issue.loc, "event"), issue.rule, issue.message, issue.value)
        for k, code in enumerate(named):
            if code not in events:
                yield _Issue(
                    (*loc, "intercurrent_events", k, "event"),
                    "unknown_intercurrent_event",
                    f"intercurrent event '{code}' is not declared in intercurrent_events",
                    code,
                )
        missing = [code for code in events if code not in named]
        if missing:
            yield _Issue(
                (*loc, "intercurrent_events"),
                "missing_strategy",
                f"no strategy for intercurrent event(s) {', '.join(missing)}; every declared "
                "intercurrent event needs a strategy in every estimand",
                missing,
            )
        measure = estimand.population_level_summary.measure
        if endpoint is not None and measure not in _SUMMARIES_BY_TYPE[endpoint.type]:
            allowed = ", ".join(sorted(_SUMMARIES_BY_TYPE[endpoint.type]))
            yield _Issue(
                (*loc, "population_level_summary", "measure"),
                "incompatible_summary",
                f"{measure} does not fit a {endpoint.type} endpoint (use {allowed})",
                measure,
            )
    primary = next((e.code for e in doc.endpoints if e.level == "primary"), None)
    if primary is not None and not any(e.endpoint == primary for e in doc.estimands):
        yield _Issue(
            ("estimands",),
            "primary_without_estimand",
            f"no estimand for the primary endpoint {primary}",
        )


def _required_covariates(doc: ProtocolDocument) -> list[str]:
    return ["baseline", *doc.randomization.strata]


def _sap_issues(doc: ProtocolDocument) -> Iterator[_Issue]:
    endpoints = {e.code: e for e in doc.endpoints}
    estimands = {e.code: e for e in doc.estimands}
    primary = next((e.code for e in doc.endpoints if e.level == "primary"), None)

    # primary analysis: an MMRM for the primary endpoint's estimand
    analysis = doc.sap.primary_analysis
    loc: Loc = ("sap", "primary_analysis")
    primary_estimand = estimands.get(analysis.estimand)
    if primary_estimand is None:
        yield _Issue(
            (*loc, "estimand"),
            "unknown_estimand",
            f"estimand '{analysis.estimand}' is not declared in estimands",
            analysis.estimand,
        )
    elif primary is not None and primary_estimand.endpoint != primary:
        yield _Issue(
            (*loc, "estimand"),
            "not_primary_endpoint",
            f"estimand {analysis.estimand} is for endpoint {primary_estimand.endpoint}, "
            f"not the primary endpoint {primary}",
            analysis.estimand,
        )
    elif (
        primary_estimand.endpoint in endpoints
        and endpoints[primary_estimand.endpoint].type != "continuous_change"
    ):
        yield _Issue(
            (*loc, "model"),
            "incompatible_model",
            "an MMRM needs a continuous_change endpoint",
            analysis.model,
        )
    missing = [c for c in _required_covariates(doc) if c not in analysis.covariates]
    if missing:
        yield _Issue(
            (*loc, "covariates"),
            "missing_covariate",
            f"covariates must include baseline and every stratification factor; missing {', '.join(missing)}",
            missing,
        )

    for i, supportive in enumerate(doc.sap.supportive_analyses):
        sloc: Loc = ("sap", "supportive_analyses", i)
        estimand = estimands.get(supportive.estimand)
        if estimand is None:
            yield _Issue(
                (*sloc, "estimand"),
                "unknown_estimand",
                f"estimand '{supportive.estimand}' is not declared in estimands",
                supportive.estimand,
            )
        elif estimand.endpoint in endpoints and endpoints[estimand.endpoint].type != "continuous_change":
            yield _Issue(
                (*sloc, "method"),
                "incompatible_model",
                "an ANCOVA of change needs a continuous_change endpoint",
                supportive.method,
            )
        missing = [c for c in _required_covariates(doc) if c not in supportive.covariates]
        if missing:
            yield _Issue(
                (*sloc, "covariates"),
                "missing_covariate",
                f"covariates must include baseline and every stratification factor; missing "
                f"{', '.join(missing)}",
                missing,
            )

    # testing hierarchy
    hierarchy = doc.sap.testing_hierarchy.endpoints
    hloc: Loc = ("sap", "testing_hierarchy", "endpoints")
    yield from _duplicates(hierarchy, hloc, "endpoint")
    comparison = (
        (primary_estimand.treatment.experimental, primary_estimand.treatment.control)
        if primary_estimand is not None
        else None
    )
    for k, code in enumerate(hierarchy):
        endpoint = endpoints.get(code)
        if endpoint is None:
            yield _Issue(
                (*hloc, k),
                "unknown_endpoint",
                f"endpoint '{code}' is not declared in endpoints",
                code,
            )
            continue
        if k == 0 and primary is not None and code != primary:
            yield _Issue(
                (*hloc, 0),
                "hierarchy_start",
                f"the hierarchy must start with the primary endpoint {primary}, not {code}",
                code,
            )
        elif endpoint.level not in ("primary", "key_secondary"):
            yield _Issue(
                (*hloc, k),
                "hierarchy_level",
                f"endpoint {code} has level {endpoint.level}; only the primary and key "
                "secondary endpoints are tested in the hierarchy",
                code,
            )
        if comparison is not None and not any(
            e.endpoint == code and (e.treatment.experimental, e.treatment.control) == comparison
            for e in doc.estimands
        ):
            yield _Issue(
                (*hloc, k),
                "missing_estimand",
                f"no estimand compares {comparison[0]} with {comparison[1]} (the primary "
                f"comparison) for endpoint {code}",
                code,
            )
    untested = [e.code for e in doc.endpoints if e.level == "key_secondary" and e.code not in hierarchy]
    if untested:
        yield _Issue(
            hloc,
            "key_secondary_not_tested",
            f"key secondary endpoint(s) {', '.join(untested)} are not in the testing hierarchy",
            untested,
        )


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    pass


class _AliasError(yaml.composer.ComposerError):
    pass


class _StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and aliases.

    Booleans follow the YAML 1.2 core schema: only true/false (True/TRUE, False/FALSE) are
    booleans, so a country code ``NO`` or an answer ``yes`` stays a string.
    """

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in stubs
            raise _AliasError(None, None, "YAML aliases (*name) are not allowed", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable key; the base constructor reports it
            if duplicate:
                raise _DuplicateKeyError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _mark_text(mark: Any) -> str:
    if mark is None:
        return ""
    return f" at line {mark.line + 1}, column {mark.column + 1}"


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKeyError as exc:
        raise _document_error("duplicate_key", f"{exc.problem}{_mark_text(exc.problem_mark)}") from exc
    except _AliasError as exc:
        raise _document_error("alias_not_allowed", f"{exc.problem}{_mark_text(exc.problem_mark)}") from exc
    except yaml.MarkedYAMLError as exc:
        raise _document_error("syntax", f"invalid YAML{_mark_text(exc.problem_mark)}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise _document_error("syntax", f"invalid YAML: {exc}") from exc


class _DuplicateJsonKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJsonKey(key)
        result[key] = value
    return result


def _json_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise _document_error(
            "syntax", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except _DuplicateJsonKey as exc:
        raise _document_error("duplicate_key", f"found duplicate key {exc.key!r}") from exc
    except ValueError as exc:
        raise _document_error("syntax", f"invalid JSON: {exc}") from exc


_JSON_START: Final = re.compile(r'\s*\{\s*["}]')


def validate_protocol(data: object) -> ProtocolDocument:
    """Validate already-loaded data (a mapping) as a protocol document.

    Raises
    ------
    ProtocolValidationError
        With every error found. Cross-field rules run only once every field is valid.
    """
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise _document_error("not_a_mapping", f"the document is {kind}")
    try:
        return ProtocolDocument.model_validate(data)
    except ValidationError as exc:
        raise ProtocolValidationError(errors_from_validation_error(exc)) from exc


def parse_protocol(text: str | bytes, *, format: Literal["yaml", "json"] | None = None) -> ProtocolDocument:
    """Parse and validate a protocol document written in YAML or JSON.

    ``format=None`` reads JSON when the text starts (after blanks) with ``{"`` or ``{}`` and
    YAML otherwise (a YAML flow mapping such as ``{schema_version: 1}`` is YAML).
    YAML is read with a ``yaml.SafeLoader`` subclass that also refuses duplicate keys and
    aliases; JSON refuses duplicate keys and NaN/Infinity. Bytes must be UTF-8 (a BOM is
    ignored).

    Raises
    ------
    ProtocolValidationError
        ``errors`` holds one :class:`FieldError` per broken rule; syntax, encoding, duplicate
        keys and a non-mapping document give a single error with path ``""``.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise _document_error("too_large", RULES["too_large"])
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _document_error("encoding", f"not valid UTF-8 at byte {exc.start}") from exc
    else:
        if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8", "replace")) > (MAX_DOCUMENT_BYTES):
            raise _document_error("too_large", RULES["too_large"])
        text = text.removeprefix("\ufeff")
    if format is None:
        format = "json" if _JSON_START.match(text) else "yaml"
    try:
        data = _load_json(text) if format == "json" else _load_yaml(text)
        return validate_protocol(data)
    except RecursionError:
        raise _document_error("too_deep", RULES["too_deep"]) from None
    except ValueError as exc:  # a value the loader cannot represent, e.g. an integer of 5,000 digits
        if isinstance(exc, ProtocolValidationError):
            raise
        raise _document_error("syntax", f"a value cannot be read: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Canonical form, hash, diff
# ---------------------------------------------------------------------------------------------

_IDENTITY_KEYS: Final = ("code", "event")


def _identity_key(*lists: list[Any]) -> str | None:
    """The key that identifies the items of these lists, if every item has a unique one."""
    items = [item for lst in lists for item in lst]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for key in _IDENTITY_KEYS:
        if all(isinstance(item.get(key), str) for item in items) and all(
            len({item[key] for item in lst}) == len(lst) for lst in lists
        ):
            return key
    return None


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        key = _identity_key(items)
        if key is not None:
            items.sort(key=lambda item: str(item[key]))
        return items
    return value


def canonical_dict(doc: ProtocolDocument) -> dict[str, Any]:
    """The canonical plain-data form of a document (see :func:`canonical_json`)."""
    result: dict[str, Any] = _canonical(doc.model_dump(mode="json"))
    return result


def canonical_json(doc: ProtocolDocument) -> bytes:
    """Canonical serialization of a validated document; :func:`content_hash` hashes it.

    What is hashed is the validated document, not its source text:

    - ``doc.model_dump(mode="json")``: every field of the schema is present, defaults filled
      in (an omitted default and an explicitly written default give the same bytes); optional
      fields that are absent appear as ``null``;
    - lists whose items all carry a unique ``code`` (sites, arms, visits, endpoints,
      populations, intercurrent events, estimands, supportive analyses) are sorted by code,
      and an estimand's intercurrent-event strategies by ``event``; their order in the source
      is not content. Every other list (block sizes, instruments at a visit, the testing
      hierarchy, criteria, deltas, ...) keeps its order;
    - JSON with object keys sorted, separators ``,`` and ``:`` and no other whitespace,
      non-ASCII characters written as UTF-8 (not ``\\u`` escapes), encoded as UTF-8;
    - integers as integers; floats (fields typed as numbers, e.g. ``alpha``, ``mcid``, the
      tipping-point deltas, even when written as ``5``) in Python's shortest round-trip
      ``repr`` (``0.05``, ``5.0``); NaN and infinity cannot occur (they are rejected).
      There are no date fields in schema version 1; should one be added, ``mode="json"``
      writes it as an ISO 8601 string.

    Strings are hashed exactly as validated: no Unicode normalization, no trimming. YAML
    comments, quoting, block or flow style, key order and the choice of YAML or JSON do not
    change the result; ``schema_version`` is part of it.
    """
    return json.dumps(
        canonical_dict(doc),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def content_hash(doc: ProtocolDocument) -> str:
    """SHA-256 (lower-case hex) of :func:`canonical_json` of the document."""
    return hashlib.sha256(canonical_json(doc)).hexdigest()


@dataclass(frozen=True)
class FieldChange:
    """One difference between two documents.

    ``path`` is like a :class:`FieldError` path, except that items of code-keyed lists are
    addressed by code rather than position: ``arms[CBT].name`` (codes start with a letter, so
    ``[2]`` is always a position). ``old`` is ``None`` for ``added``, ``new`` for ``removed``.
    """

    path: str
    old: Any
    new: Any
    kind: Literal["added", "removed", "changed"]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _diff(old: Any, new: Any, path: str, out: list[FieldChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            sub = _join(path, key)
            if key not in old:
                out.append(FieldChange(sub, None, new[key], "added"))
            elif key not in new:
                out.append(FieldChange(sub, old[key], None, "removed"))
            else:
                _diff(old[key], new[key], sub, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        key = _identity_key(old, new)
        if key is not None:
            old_items = {item[key]: item for item in old}
            new_items = {item[key]: item for item in new}
            for ident in sorted(old_items.keys() | new_items.keys()):
                sub = f"{path}[{ident}]"
                if ident not in old_items:
                    out.append(FieldChange(sub, None, new_items[ident], "added"))
                elif ident not in new_items:
                    out.append(FieldChange(sub, old_items[ident], None, "removed"))
                else:
                    _diff(old_items[ident], new_items[ident], sub, out)
            return
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(old):
                out.append(FieldChange(sub, None, new[i], "added"))
            elif i >= len(new):
                out.append(FieldChange(sub, old[i], None, "removed"))
            else:
                _diff(old[i], new[i], sub, out)
        return
    if old != new or type(old) is not type(new):
        out.append(FieldChange(path, old, new, "changed"))


def diff_documents(old: ProtocolDocument, new: ProtocolDocument) -> list[FieldChange]:
    """Field-by-field differences between two documents, over their canonical form.

    Items of code-keyed lists are matched by code (re-ordering arms is not a change; a new
    site is one ``added`` change at ``sites[CODE]``); other lists are compared by position.
    The result is empty exactly when the two documents have the same :func:`content_hash`.
    """
    out: list[FieldChange] = []
    _diff(canonical_dict(old), canonical_dict(new), "", out)
    return out


# ---------------------------------------------------------------------------------------------
# Schema and example
# ---------------------------------------------------------------------------------------------


def protocol_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the protocol document, for /api/v1/schemas/protocol.json.

    The schema covers the shape and the per-field rules; cross-field rules (unique codes,
    references, windows, hierarchy, ...) are listed in ``docs/protocol-format.md`` and are
    checked by :func:`parse_protocol` only.
    """
    schema = ProtocolDocument.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "description": (
            "Protocol document, schema version 1. Cross-field rules are checked by the "
            "registry, not by this schema: see docs/protocol-format.md."
        ),
    }


def example_protocol_path() -> Path:
    """Path of the annotated example ``protocols/examples/mood-cbt.yaml`` (package data)."""
    ref = resources.files("protocols").joinpath("examples").joinpath("mood-cbt.yaml")
    if not isinstance(ref, Path):  # pragma: no cover - zipped installs are not supported
        raise FileNotFoundError(f"the example protocol is not a file on disk: {ref}")
    return ref


def load_example_protocol() -> ProtocolDocument:
    """Parse the example protocol (raises if it ever stops validating)."""
    return parse_protocol(example_protocol_path().read_bytes(), format="yaml")
