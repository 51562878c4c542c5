"""The statistical analysis plan applied: every analysis it declares, as an analysis-results dataset.

:func:`run_sap` takes the analysis datasets (ADSL, ADQS, ADTTE of :mod:`analysis.datasets`) and
a :class:`SapSpec`, the plain description of what a protocol's analysis plan declares, and
applies the validated estimators of this package as the plan says:

- per estimand of a continuous change endpoint: the MMRM (differences at every visit, LS
  means; the primary estimand's difference at its visit is *the* primary result), the
  supportive ANCOVA, Hedges' g and the model-adjusted difference over the pooled baseline SD;
  for the primary estimand also multiple imputation under MAR with the delta-adjusted
  tipping-point analysis, the MMRM refitted without prorated totals, and subgroup estimates
  (site, baseline severity) for a forest plot;
- per estimand of a responder or remission endpoint: proportions, risk difference (Newcombe),
  risk ratio, baseline-adjusted odds ratio and NNT;
- per estimand of a time-to-event endpoint: Kaplan-Meier medians by arm, the stratified
  log-rank test, the Cox hazard ratio and its proportional-hazards test;
- the testing hierarchy (fixed sequence or Holm) over the plan's endpoints;
- descriptive statistics by arm and visit, data completeness, and the CONSORT counts.

The result is a :class:`ResultsDocument` whose :meth:`~ResultsDocument.to_json` is canonical:
the same inputs and seeds give the same bytes.

**Blinding.** With ``blinded=True`` the arm column is dropped from every input before anything
is computed, and nothing of the plan that names an arm is passed on: only pooled results can
come out (pooled descriptives and completeness by visit, pooled Kaplan-Meier medians of the
endpoints that exist in every arm, pooled CONSORT counts), whatever the plan declares.

**Intercurrent events.** Each estimand's strategies are applied to the data: under the
hypothetical and while-on-treatment strategies, records after the event are set missing
(continuous and binary endpoints; missing at random in the models) or follow-up is censored at
the event (time to event); under the composite strategy a binary outcome becomes the
unfavourable one when the event occurred by the endpoint visit, and a time-to-event outcome
becomes an event at the intercurrent event (unfavourable events) or a censoring at the end of
follow-up (favourable events). Treatment policy uses every record. The principal-stratum
strategy, and a composite strategy for a continuous endpoint, are not supported: those
analyses are reported as not estimable.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from analysis.results import Result, as_parameters, captured_warnings

if TYPE_CHECKING:
    import pandas as pd

    from analysis.consort import ConsortCounts
    from analysis.mmrm import MmrmResult
    from analysis.survival import SurvivalCurve

__all__ = [
    "COVARIATE_COLUMNS",
    "POPULATION_FLAGS",
    "AnalysisRecord",
    "ArmSpec",
    "EndpointSpec",
    "EstimandSpec",
    "IntercurrentEventSpec",
    "PopulationSpec",
    "PrimaryAnalysisError",
    "ResultsDocument",
    "SapSpec",
    "StrategySpec",
    "SupportiveSpec",
    "frames_sha256",
    "run_sap",
]

SCHEMA = "trials.analysis-results"
SCHEMA_VERSION = 1

#: The plan's covariate and stratification names and the analysis-dataset columns they read.
COVARIATE_COLUMNS: Mapping[str, str] = {
    "baseline": "base",
    "baseline_by_visit": "base",
    "site": "site",
    "baseline_severity": "severity_stratum",
    "age": "age",
    "sex": "sex",
}
#: Population kinds and their ADSL flags.
POPULATION_FLAGS: Mapping[str, str] = {"full_analysis": "fasfl", "per_protocol": "pprotfl", "safety": "saffl"}

EndpointType = Literal["continuous_change", "responder", "remission", "time_to_event"]
StrategyName = Literal[
    "treatment_policy", "hypothetical", "composite", "while_on_treatment", "principal_stratum"
]
ENDPOINT_TYPES = ("continuous_change", "responder", "remission", "time_to_event")
STRATEGIES = ("treatment_policy", "hypothetical", "composite", "while_on_treatment", "principal_stratum")
POOLED = "ALL"
#: Most points of a Kaplan-Meier curve (and of its censoring times) kept in a record's
#: ``statistics["curve"]``; a longer curve is thinned (see :func:`_km_curve`).
KM_CURVE_MAX_POINTS = 500


# --------------------------------------------------------------------------------------------
# What the runner needs of an analysis plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmSpec:
    """An arm of the trial.

    Attributes
    ----------
    code : str
        Arm code as in the ``arm`` column.
    has_app : bool
        Whether the intervention is an app (received = used it at least once).
    """

    code: str
    has_app: bool = False


@dataclass(frozen=True)
class EndpointSpec:
    """An endpoint and the analysis-dataset parameter it is read from.

    Attributes
    ----------
    code : str
        Endpoint code.
    type : {"continuous_change", "responder", "remission", "time_to_event"}
        How it is analysed.
    paramcd : str
        ADQS parameter (``PHQ9TOT``) or, for time to event, ADTTE parameter (``TTRESP``).
    visit : str
        Assessment visit; for time to event the visit whose target day ends follow-up.
    day : int
        Target day of `visit` from randomization.
    favourable : bool
        Whether the outcome (response, remission) or event (first response) is wanted;
        False for events to avoid (stopping app use, leaving the trial).
    all_arms : bool
        False when the endpoint exists in some arms only (stopping app use): a pooled
        summary of it would reveal the allocation, so the blinded path leaves it out.
    name : str
        Label for reports.
    """

    code: str
    type: EndpointType
    paramcd: str
    visit: str
    day: int
    favourable: bool = True
    all_arms: bool = True
    name: str = ""


@dataclass(frozen=True)
class IntercurrentEventSpec:
    """Where the data say that an intercurrent event happened.

    Attributes
    ----------
    code : str
        The plan's code of the event.
    columns : tuple of str
        ADSL date columns; the event's date is the earliest of them. Empty when the platform
        records nothing for it (the event is then taken as not having occurred, and noted).
    """

    code: str
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class StrategySpec:
    """An estimand's strategy for one intercurrent event."""

    event: str
    strategy: StrategyName


@dataclass(frozen=True)
class EstimandSpec:
    """An estimand: endpoint, comparison, population and intercurrent-event strategies.

    Attributes
    ----------
    code : str
        Estimand code.
    endpoint : str
        Endpoint code.
    experimental, control : str
        Arm codes; differences and ratios are experimental versus control.
    population : str
        Population code (see :class:`PopulationSpec`).
    strategies : tuple of StrategySpec
        One per intercurrent event the estimand addresses.
    summary : str
        The population-level summary measure (e.g. ``difference_in_means``).
    """

    code: str
    endpoint: str
    experimental: str
    control: str
    population: str
    strategies: tuple[StrategySpec, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class PopulationSpec:
    """An analysis population and its ADSL flag column (``"Y"`` = in the population)."""

    code: str
    flag: str


@dataclass(frozen=True)
class SupportiveSpec:
    """A supportive ANCOVA of an estimand at its endpoint visit, with its covariates."""

    code: str
    estimand: str
    covariates: tuple[str, ...]


@dataclass(frozen=True)
class SapSpec:
    """What :func:`run_sap` needs of a protocol's statistical analysis plan.

    Attributes
    ----------
    trial : str
        Trial code.
    arms : tuple of ArmSpec
        The arms, in the protocol's order.
    baseline_visit : str
        Code of the baseline visit.
    visits : tuple of str
        Post-baseline visit codes, in order (the MMRM's visits).
    visit_days : tuple of int
        Their target days from randomization (the times of the numbers at risk).
    endpoints : tuple of EndpointSpec
        Every endpoint.
    estimands : tuple of EstimandSpec
        Every estimand.
    populations : tuple of PopulationSpec
        Every analysis population.
    intercurrent_events : tuple of IntercurrentEventSpec
        Every intercurrent event with its data source.
    primary_estimand : str
        Code of the estimand of the primary analysis.
    covariates : tuple of str
        The primary MMRM's covariates, in the plan's vocabulary (keys of
        :data:`COVARIATE_COLUMNS`); also the adjustment of the odds ratios (baseline and
        factors) and, without the baseline, the factors of the imputation model.
    strata : tuple of str
        Randomization strata in the same vocabulary (stratified log-rank and Cox).
    hierarchy : tuple of str
        Endpoint codes of the testing hierarchy, in order.
    hierarchy_procedure : {"fixed_sequence", "holm"}
        Multiplicity procedure.
    alpha : float
        Two-sided significance level.
    df_method : str
        Degrees of freedom of the MMRM.
    supportive : tuple of SupportiveSpec
        Supportive ANCOVAs.
    imputations, imputation_seed : int or None
        Multiple imputation under MAR (None: not planned).
    tipping_deltas : tuple of float
        Shifts of the tipping-point analysis (empty: not planned).
    without_prorating : bool
        Whether the primary MMRM is refitted on totals without prorating.
    subgroups : tuple of str
        Subgroup variables of the primary endpoint's forest plot (plan vocabulary).
    """

    trial: str
    arms: tuple[ArmSpec, ...]
    baseline_visit: str
    visits: tuple[str, ...]
    visit_days: tuple[int, ...]
    endpoints: tuple[EndpointSpec, ...]
    estimands: tuple[EstimandSpec, ...]
    populations: tuple[PopulationSpec, ...]
    primary_estimand: str
    covariates: tuple[str, ...]
    intercurrent_events: tuple[IntercurrentEventSpec, ...] = ()
    strata: tuple[str, ...] = ()
    hierarchy: tuple[str, ...] = ()
    hierarchy_procedure: Literal["fixed_sequence", "holm"] = "fixed_sequence"
    alpha: float = 0.05
    df_method: str = "satterthwaite"
    supportive: tuple[SupportiveSpec, ...] = ()
    imputations: int | None = None
    imputation_seed: int | None = None
    tipping_deltas: tuple[float, ...] = ()
    without_prorating: bool = False
    subgroups: tuple[str, ...] = ("site", "baseline_severity")

    def __post_init__(self) -> None:
        """Check that the references between the parts hold."""
        arms = {a.code for a in self.arms}
        endpoints = {e.code for e in self.endpoints}
        populations = {p.code for p in self.populations}
        estimands = {e.code for e in self.estimands}
        problems = []
        if len(self.visit_days) != len(self.visits):
            problems.append("visit_days must give one day per visit")
        for e in self.endpoints:
            if e.type not in ENDPOINT_TYPES:
                problems.append(f"endpoint {e.code}: unknown type {e.type!r}")
        for est in self.estimands:
            if est.endpoint not in endpoints:
                problems.append(f"estimand {est.code}: unknown endpoint {est.endpoint!r}")
            if est.population not in populations:
                problems.append(f"estimand {est.code}: unknown population {est.population!r}")
            for a in (est.experimental, est.control):
                if a not in arms:
                    problems.append(f"estimand {est.code}: unknown arm {a!r}")
            for s in est.strategies:
                if s.strategy not in STRATEGIES:
                    problems.append(f"estimand {est.code}: unknown strategy {s.strategy!r}")
        if self.primary_estimand not in estimands:
            problems.append(f"primary estimand {self.primary_estimand!r} is not an estimand")
        for code in self.hierarchy:
            if code not in endpoints:
                problems.append(f"hierarchy: unknown endpoint {code!r}")
        for sup in self.supportive:
            if sup.estimand not in estimands:
                problems.append(f"supportive analysis {sup.code}: unknown estimand {sup.estimand!r}")
        for name in (
            *self.covariates,
            *self.strata,
            *self.subgroups,
            *(c for sup in self.supportive for c in sup.covariates),
        ):
            if name not in COVARIATE_COLUMNS:
                problems.append(f"unknown covariate {name!r}")
        if self.hierarchy_procedure not in ("fixed_sequence", "holm"):
            problems.append(f"unknown multiplicity procedure {self.hierarchy_procedure!r}")
        if not 0 < self.alpha < 1:
            problems.append("alpha must lie between 0 and 1")
        if problems:
            raise ValueError("inconsistent analysis plan: " + "; ".join(problems))

    def endpoint(self, code: str) -> EndpointSpec:
        """Return the endpoint of that code.

        Parameters
        ----------
        code : str
            Endpoint code.

        Returns
        -------
        EndpointSpec
            The endpoint.

        Raises
        ------
        KeyError
            If there is none.
        """
        for e in self.endpoints:
            if e.code == code:
                return e
        raise KeyError(code)

    def estimand(self, code: str) -> EstimandSpec:
        """Return the estimand of that code.

        Parameters
        ----------
        code : str
            Estimand code.

        Returns
        -------
        EstimandSpec
            The estimand.

        Raises
        ------
        KeyError
            If there is none.
        """
        for e in self.estimands:
            if e.code == code:
                return e
        raise KeyError(code)


# --------------------------------------------------------------------------------------------
# The results document
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisRecord(Result):
    """One result of the analysis-results dataset: a :class:`Result` with what identifies it.

    Attributes
    ----------
    analysis_id : str
        Stable identifier, e.g. ``PHQ9_CHG_W8.E1_PRIMARY.MMRM.CBT-ATTN.W08``.
    endpoint, estimand, population : str or None
        What it estimates, where that applies.
    arm : str or None
        The arm of a per-arm result.
    comparison : str or None
        ``experimental-control`` for a comparison of arms.
    primary : bool
        True on the primary estimand's primary analysis only.
    statistics : Mapping[str, Any]
        Further named numbers of the result (SD and quartiles of a summary, NNT text, ...).
    """

    analysis_id: str = ""
    endpoint: str | None = None
    estimand: str | None = None
    population: str | None = None
    arm: str | None = None
    comparison: str | None = None
    primary: bool = False
    statistics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultsDocument:
    """The analysis-results dataset of one run of the analysis plan.

    Attributes
    ----------
    trial : str
        Trial code.
    blinded : bool
        Whether only pooled results were computed.
    input_sha256 : str
        SHA-256 of the input data, as given by the caller.
    alpha : float
        The plan's significance level.
    results : tuple of AnalysisRecord
        Every result, in a fixed order.
    notes : tuple of str
        Remarks on the run as a whole (analyses not run and why).
    software : Mapping[str, str]
        Versions of Python and of the numerical libraries.
    """

    trial: str
    blinded: bool
    input_sha256: str
    alpha: float
    results: tuple[AnalysisRecord, ...]
    notes: tuple[str, ...] = ()
    software: Mapping[str, str] = field(default_factory=dict)

    def record(self, analysis_id: str) -> AnalysisRecord:
        """Return the result with that identifier.

        Parameters
        ----------
        analysis_id : str
            The identifier.

        Returns
        -------
        AnalysisRecord
            The result.

        Raises
        ------
        KeyError
            If there is none.
        """
        for r in self.results:
            if r.analysis_id == analysis_id:
                return r
        raise KeyError(analysis_id)

    @property
    def primary(self) -> AnalysisRecord | None:
        """The result marked primary (None in a blinded document)."""
        return next((r for r in self.results if r.primary), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: non-finite floats as None, tuples as lists, dates as ISO text.

        Returns
        -------
        dict
            ``schema``, ``schema_version``, ``trial``, ``blinded``, ``input_sha256``,
            ``alpha``, ``software``, ``notes`` and ``results`` (one object per record with
            every field of :class:`AnalysisRecord`).
        """
        results = [{f.name: getattr(r, f.name) for f in fields(r)} for r in self.results]
        plain: dict[str, Any] = _plain(
            {
                "schema": SCHEMA,
                "schema_version": SCHEMA_VERSION,
                "trial": self.trial,
                "blinded": self.blinded,
                "input_sha256": self.input_sha256,
                "alpha": self.alpha,
                "software": self.software,
                "notes": self.notes,
                "results": results,
            }
        )
        return plain

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, floats as Python's ``repr``, null for NaN, final newline.

        Returns
        -------
        str
            The same text for the same inputs and seeds, byte for byte.
        """
        return (
            json.dumps(self.to_dict(), sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        )

    def to_frame(self) -> pd.DataFrame:
        """Return one row per result.

        Returns
        -------
        pandas.DataFrame
            Columns ``analysis_id``, ``endpoint``, ``estimand``, ``population``, ``arm``,
            ``comparison``, ``primary``, ``method``, ``n``, ``estimate``, ``se``, ``df``,
            ``ci_low``, ``ci_high``, ``p_value``.
        """
        import pandas as pd

        keys = (
            "analysis_id", "endpoint", "estimand", "population", "arm", "comparison", "primary", "method",
            "n", "estimate", "se", "df", "ci_low", "ci_high", "p_value",
        )  # fmt: skip
        return pd.DataFrame([{k: getattr(r, k) for k in keys} for r in self.results], columns=list(keys))


def _plain(value: Any) -> Any:
    """Convert to JSON values, deterministically; refuse what has no canonical form."""
    import numpy as np

    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")


def frames_sha256(frames: Mapping[str, pd.DataFrame]) -> str:
    r"""SHA-256 of analysis frames, independent of how they were built.

    Parameters
    ----------
    frames : Mapping[str, pandas.DataFrame]
        Name to frame (e.g. ``{"adsl": ..., "adqs": ..., "adtte": ...}``).

    Returns
    -------
    str
        Hexadecimal digest.

    Notes
    -----
    For each frame in order of name: the name, then its CSV text (header, no index, ``\n``
    line ends, dates in ISO form, missing values empty, floats as ``repr``), each part
    preceded by its length, so that no two different inputs hash alike by concatenation.
    """
    digest = hashlib.sha256()
    for name in sorted(frames):
        text = frames[name].to_csv(index=False, lineterminator="\n", na_rep="").encode("utf-8")
        for part in (name.encode("utf-8"), text):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


class PrimaryAnalysisError(RuntimeError):
    """The primary analysis could not be carried out (the other analyses only note failures)."""


class _NotEstimable(ValueError):
    """An analysis that ran but gave no usable estimate."""


# Exceptions of an analysis that does not fit the data (reported as "not estimable").
_FAILURES: tuple[type[Exception], ...] = (ValueError, ArithmeticError, KeyError, IndexError)


def _software() -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in ("numpy", "scipy", "pandas", "statsmodels"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # pragma: no cover - every one is a dependency
            out[package] = "unknown"
    return out


def _aid(*parts: object) -> str:
    return ".".join(str(p) for p in parts if p is not None and p != "")


def _id_part(value: object) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)).strip("_") or "_"


def _record(result: Result, **identity: Any) -> AnalysisRecord:
    base = {f.name: getattr(result, f.name) for f in fields(Result)}
    extra = dict(identity.pop("parameters", {}))
    base["parameters"] = as_parameters(**{**dict(result.parameters), **extra})
    if "notes" in identity:
        base["notes"] = tuple(dict.fromkeys((*result.notes, *identity.pop("notes"))))
    return AnalysisRecord(**base, **identity)


def _failed(reason: str, **identity: Any) -> AnalysisRecord:
    return AnalysisRecord(estimate=math.nan, notes=(f"not estimable: {reason}",), **identity)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What one set of analyses estimates (an estimand, or an endpoint without one)."""

    endpoint: EndpointSpec
    estimand: str | None
    experimental: str
    control: str
    population: PopulationSpec
    strategies: tuple[StrategySpec, ...]

    @property
    def comparison(self) -> str:
        return f"{self.experimental}-{self.control}"

    def aid(self, method: str, *rest: object) -> str:
        return _aid(self.endpoint.code, self.estimand, method, *rest)

    def identity(self, **more: Any) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint.code,
            "estimand": self.estimand,
            "population": self.population.code,
            **more,
        }


@dataclass
class _Ice:
    """Study day of the intercurrent events, per participant, by how they are handled."""

    censor: pd.Series[float]
    composite: pd.Series[float]
    notes: list[str]


class _Run:
    """Shared state of one unblinded run: frames, fitted models, records."""

    def __init__(
        self,
        adsl: pd.DataFrame,
        adqs: pd.DataFrame,
        adtte: pd.DataFrame,
        spec: SapSpec,
        adqs_unprorated: pd.DataFrame | None,
        timings: list[tuple[str, float]] | None,
    ) -> None:
        self.adsl = adsl.reset_index(drop=True)
        self.adqs = adqs
        self.adtte = adtte
        self.spec = spec
        self.adqs_unprorated = adqs_unprorated
        self.timings = timings
        self.records: list[AnalysisRecord] = []
        self.notes: list[str] = []
        self.fits: dict[tuple[Any, ...], MmrmResult | Exception] = {}

    # --- bookkeeping ------------------------------------------------------------------------

    def attempt(
        self,
        label: str,
        compute: Callable[[], list[AnalysisRecord]],
        on_failure: Sequence[Mapping[str, Any]],
        *,
        primary: bool = False,
    ) -> list[AnalysisRecord]:
        """Run one analysis; failures become not-estimable records (or raise, if primary)."""
        start = _time.perf_counter()
        try:
            with captured_warnings() as caught:
                out = compute()
        except _FAILURES as exc:
            if primary:
                raise PrimaryAnalysisError(f"the primary analysis ({label}) failed: {exc}") from exc
            out = [_failed(str(exc), **identity) for identity in on_failure]
            if not out:
                self.notes.append(f"{label}: not estimable: {exc}")
            caught = []
        finally:
            if self.timings is not None:
                self.timings.append((label, _time.perf_counter() - start))
        if caught:
            out = [replace(r, notes=(*r.notes, *caught)) for r in out]
        self.records.extend(out)
        return out

    # --- data -------------------------------------------------------------------------------

    def population(self, population: PopulationSpec) -> pd.DataFrame:
        flag = population.flag
        if flag not in self.adsl.columns:
            raise KeyError(f"population flag {flag!r} not in the subject-level table")
        return self.adsl[self.adsl[flag] == "Y"]

    def ice(self, target: _Target, people: pd.DataFrame) -> _Ice:
        import numpy as np
        import pandas as pd

        censor = pd.Series(np.nan, index=people["subject"].to_numpy(), dtype=float)
        composite = censor.copy()
        notes: list[str] = []
        events = {e.code: e for e in self.spec.intercurrent_events}
        randomized = pd.to_datetime(people["randomized_on"])
        for s in target.strategies:
            if s.strategy == "treatment_policy":
                continue
            if s.strategy == "principal_stratum":
                raise _NotEstimable(f"the principal-stratum strategy ({s.event}) is not supported")
            if s.strategy == "composite" and target.endpoint.type == "continuous_change":
                raise _NotEstimable(
                    f"a composite strategy ({s.event}) for a continuous endpoint is not supported"
                )
            source = events.get(s.event)
            columns = [c for c in (source.columns if source else ()) if c in people.columns]
            if not columns:
                notes.append(f"no data on intercurrent event {s.event}: taken as not having occurred")
                continue
            days = pd.concat(
                [(pd.to_datetime(people[c]) - randomized).dt.days.astype(float) for c in columns], axis=1
            ).min(axis=1)
            days.index = censor.index
            which = composite if s.strategy == "composite" else censor
            which[:] = np.fmin(which.to_numpy(), days.to_numpy())
            notes.append(f"intercurrent event {s.event}: {s.strategy.replace('_', ' ')} strategy")
        return _Ice(censor, composite, notes)

    def long(
        self, paramcd: str, people: pd.DataFrame, ice: _Ice | None, adqs: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Participants x post-baseline visits with the analysed record (missing where none)."""
        import numpy as np
        import pandas as pd

        adqs = self.adqs if adqs is None else adqs
        records = adqs[(adqs["paramcd"] == paramcd) & (adqs["anl01fl"] == "Y")]
        base = records[records["ablfl"] == "Y"].drop_duplicates("subject").set_index("subject")["aval"]
        post = records[records["avisit"].isin(self.spec.visits) & (records["ady"] > 0)]
        post = post[["subject", "avisit", "ady", "aval", "chg", "crit1fl", "crit2fl"]]
        subjects = people["subject"].to_numpy()
        grid = pd.DataFrame(
            {
                "subject": np.repeat(subjects, len(self.spec.visits)),
                "avisit": np.tile(np.asarray(self.spec.visits, dtype=object), len(subjects)),
            }
        )
        out = grid.merge(post, on=["subject", "avisit"], how="left", validate="one_to_one")
        out["aval"] = out["aval"].astype("Float64").astype(float)
        out["chg"] = out["chg"].astype("Float64").astype(float)
        out["ady"] = out["ady"].astype("Float64").astype(float)
        out["base"] = out["subject"].map(base).astype("Float64").astype(float)
        keep = [c for c in ("arm", "site", "severity_stratum", "age", "sex") if c in people.columns]
        out = out.merge(people[["subject", *keep]], on="subject", how="left")
        if ice is not None:
            after = out["ady"] > out["subject"].map(ice.censor).to_numpy()
            out.loc[after, ["aval", "chg", "ady"]] = np.nan
            out.loc[after, ["crit1fl", "crit2fl"]] = None
        return out

    def terms(self, names: Sequence[str]) -> tuple[list[str], list[str]]:
        covariates: list[str] = []
        by_visit: list[str] = []
        if "baseline_by_visit" in names:
            by_visit.append("base")
        elif "baseline" in names:
            covariates.append("base")
        for name in names:
            if name not in ("baseline", "baseline_by_visit"):
                covariates.append(COVARIATE_COLUMNS[name])
        return covariates, by_visit

    def strata_columns(self) -> list[str]:
        return [COVARIATE_COLUMNS[s] for s in self.spec.strata if COVARIATE_COLUMNS[s] in self.adsl.columns]

    # --- MMRM ---------------------------------------------------------------------------------

    def mmrm(
        self,
        target: _Target,
        long: pd.DataFrame,
        *,
        covariates: Sequence[str],
        key: tuple[Any, ...],
    ) -> MmrmResult:
        from analysis.mmrm import fit_mmrm

        cached = self.fits.get(key)
        if cached is None:
            cov, by_visit = self.terms(covariates)
            data = long[long["chg"].notna()]
            visits = [v for v in self.spec.visits if v in set(data["avisit"])]
            try:
                fit = fit_mmrm(
                    data,
                    subject="subject",
                    visit="avisit",
                    arm="arm",
                    response="chg",
                    reference_arm=target.control,
                    covariates=cov,
                    visit_covariates=by_visit,
                    visits=visits,
                    primary_visit=target.endpoint.visit,
                    primary_arm=target.experimental,
                    df_method=self.spec.df_method,
                    alpha=self.spec.alpha,
                )
                if not fit.converged:
                    raise _NotEstimable(
                        f"REML optimisation did not converge (largest gradient {fit.gradient_norm:.3g})"
                    )
            except _FAILURES as exc:
                self.fits[key] = exc
                raise
            self.fits[key] = cached = fit
        if isinstance(cached, Exception):
            raise cached
        return cached


def _ice_key(target: _Target) -> tuple[tuple[str, str], ...]:
    return tuple((s.event, s.strategy) for s in target.strategies if s.strategy != "treatment_policy")


def _targets(spec: SapSpec) -> tuple[list[_Target], list[str]]:
    populations = {p.code: p for p in spec.populations}
    primary = spec.estimand(spec.primary_estimand)
    targets = []
    notes = []
    with_estimand = {e.endpoint for e in spec.estimands}
    for est in spec.estimands:
        targets.append(
            _Target(
                spec.endpoint(est.endpoint),
                est.code,
                est.experimental,
                est.control,
                populations[est.population],
                est.strategies,
            )
        )
    for ep in spec.endpoints:
        if ep.code not in with_estimand:
            targets.append(
                _Target(ep, None, primary.experimental, primary.control, populations[primary.population], ())
            )
            notes.append(
                f"endpoint {ep.code} has no estimand: analysed with the primary estimand's comparison "
                f"({primary.experimental} versus {primary.control}) and population ({primary.population}), "
                "treatment policy"
            )
    return targets, notes


def run_sap(
    adsl: pd.DataFrame,
    adqs: pd.DataFrame,
    adtte: pd.DataFrame,
    spec: SapSpec,
    *,
    blinded: bool,
    input_sha256: str,
    screening: pd.DataFrame | None = None,
    adqs_unprorated: pd.DataFrame | None = None,
    timings: list[tuple[str, float]] | None = None,
) -> ResultsDocument:
    r"""Apply the analysis plan to the analysis datasets and return every result.

    Parameters
    ----------
    adsl : pandas.DataFrame
        Subject-level table (:func:`analysis.datasets.subject_level`): ``subject``, ``arm``,
        ``randomized_on``, the population flags, the strata columns (``site``,
        ``severity_stratum``), ``eos_status``, ``use_days``, and the intercurrent events'
        date columns.
    adqs : pandas.DataFrame
        Parameter-by-visit table (:func:`analysis.datasets.parameter_by_visit`).
    adtte : pandas.DataFrame
        Time-to-event table (:func:`analysis.datasets.time_to_event`).
    spec : SapSpec
        The plan.
    blinded : bool
        True before unblinding: the arm column is dropped before any computation and only
        pooled results are returned, whatever `spec` declares.
    input_sha256 : str
        SHA-256 of the input data (e.g. :func:`frames_sha256`), recorded in the document.
    screening : pandas.DataFrame, optional
        Screening log for the CONSORT enrolment boxes (see
        :func:`analysis.consort.consort_counts`).
    adqs_unprorated : pandas.DataFrame, optional
        ADQS derived without prorating, for the plan's sensitivity analysis.
    timings : list, optional
        If given, ``(analysis label, seconds)`` is appended for every analysis run (timings
        never enter the document).

    Returns
    -------
    ResultsDocument
        ``trial``, ``blinded``, ``input_sha256``, ``alpha``, ``results`` (one
        :class:`AnalysisRecord` per result: ``analysis_id``, ``endpoint``, ``estimand``,
        ``population``, ``arm``, ``comparison``, ``primary``, ``method``, ``parameters``,
        ``n``, ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``, ``p_value``,
        ``statistics``, ``notes``), ``notes`` and ``software``.

    Raises
    ------
    PrimaryAnalysisError
        If the primary MMRM cannot be fitted or does not converge.
    analysis.consort.ConsortError
        If the CONSORT counts violate an invariant of the flow diagram.
    KeyError
        If a required column is missing.

    Notes
    -----
    Analyses per estimand (see the module docstring for the intercurrent-event strategies):

    - continuous change: MMRM of change from baseline at every post-baseline visit with the
      plan's covariates (all arms of the population in the model; the control arm is the
      reference); LS means of the two arms and their difference at every visit; the primary
      estimand's difference at its endpoint visit is marked ``primary``. Hedges' g of the
      observed changes at the endpoint visit, and the MMRM difference divided by the pooled
      baseline SD of the two arms. Supportive ANCOVA
      (:math:`\Delta y \sim arm + covariates`) at the endpoint visit. For the primary
      estimand: multiple imputation under MAR with ANCOVA and Rubin's rules, the tipping-point
      analysis over the plan's shifts, the MMRM on totals without prorating, and the MMRM
      within each level of site and baseline severity with Cochran's Q for the interaction.
    - responder and remission: the analysed record's flag at the endpoint visit (participants
      without one are left out and counted in the notes), in the two arms compared:
      proportions (Wilson), risk difference (Newcombe), risk ratio (log interval), odds ratio
      from logistic regression on the baseline score and factors of the plan, NNT.
    - time to event: follow-up ends at the endpoint visit's target day; Kaplan-Meier medians
      (Brookmeyer-Crowley) in every arm of the population, each with its numbers at risk and
      its curve (steps, log-log limits, censoring times) for the figure; log-rank test and Cox model
      (Efron ties) of the two arms, both stratified by the randomization strata; the
      proportional-hazards score test.

    The hierarchy tests the plan's endpoints in order, each by its primary comparison's
    p-value: the MMRM difference (continuous), the odds ratio's Wald test (binary), the
    stratified log-rank test (time to event). A p-value that could not be computed counts as
    1 (not rejected). An endpoint without an estimand is analysed with the primary estimand's
    comparison and population under treatment policy (its identifiers have no estimand part).
    Warnings are captured into each result's notes; an analysis that fails is a result with
    ``estimate`` None and the reason in its notes, except the primary MMRM, which raises.

    References
    ----------
    .. [1] ICH E9(R1) addendum on estimands and sensitivity analysis in clinical trials, 2019.
    .. [2] CDISC Analysis Results Standard (ARS) v1.0, 2024: an analysis's results as data,
       identified by analysis and linked to the analysis plan.
    """
    if blinded:
        # The blinded path is given neither the arm column nor any part of the plan naming an
        # arm: it cannot compute an arm-level number.
        return _run_blinded(
            adsl.drop(columns=["arm"], errors="ignore"),
            adqs.drop(columns=["arm"], errors="ignore"),
            adtte.drop(columns=["arm"], errors="ignore"),
            trial=spec.trial,
            visits=(spec.baseline_visit, *spec.visits),
            visit_days=spec.visit_days,
            endpoints=spec.endpoints,
            population_flag=_full_analysis_flag(spec),
            population_code=_full_analysis_code(spec),
            alpha=spec.alpha,
            input_sha256=input_sha256,
            screening=screening,
            timings=timings,
        )
    run = _Run(adsl, adqs, adtte, spec, adqs_unprorated, timings)
    targets, notes = _targets(spec)
    run.notes.extend(notes)
    _descriptives(run)
    for target in targets:
        kind = target.endpoint.type
        if kind == "continuous_change":
            _continuous(run, target)
        elif kind in ("responder", "remission"):
            _binary(run, target)
        else:
            _time_to_event(run, target)
    _hierarchy(run, targets)
    _consort(run, screening)
    return ResultsDocument(
        trial=spec.trial,
        blinded=False,
        input_sha256=input_sha256,
        alpha=spec.alpha,
        results=tuple(run.records),
        notes=tuple(run.notes),
        software=_software(),
    )


def _full_analysis_flag(spec: SapSpec) -> str:
    flags = [p.flag for p in spec.populations]
    return "fasfl" if "fasfl" in flags or not flags else flags[0]


def _full_analysis_code(spec: SapSpec) -> str:
    flag = _full_analysis_flag(spec)
    return next((p.code for p in spec.populations if p.flag == flag), "FAS")


def _difference(fit: MmrmResult, arm: str, visit: str) -> Result:
    for d in fit.differences:
        if d.parameters["arm"] == arm and d.parameters["visit"] == visit:
            return d
    raise _NotEstimable(f"the MMRM has no difference of arm {arm} at visit {visit}")


# --------------------------------------------------------------------------------------------
# Analyses by endpoint type
# --------------------------------------------------------------------------------------------


def _descriptives(run: _Run) -> None:
    flag = _full_analysis_flag(run.spec)
    population = next((p for p in run.spec.populations if p.flag == flag), PopulationSpec("FAS", flag))
    people = run.population(population)
    arms = [a.code for a in run.spec.arms]
    for paramcd in dict.fromkeys(e.paramcd for e in run.spec.endpoints if e.type != "time_to_event"):

        def compute(paramcd: str = paramcd) -> list[AnalysisRecord]:
            frame = _with_baseline(run, paramcd, people)
            return _describe(frame, paramcd, population.code, arms, run.spec.baseline_visit)

        run.attempt(f"descriptive statistics {paramcd}", compute, [])


def _with_baseline(run: _Run, paramcd: str, people: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    long = run.long(paramcd, people, None)
    base = long.drop_duplicates("subject")[["subject", "base", *[c for c in ("arm",) if c in long]]]
    base = base.assign(avisit=run.spec.baseline_visit, aval=base["base"], chg=float("nan"))
    return pd.concat([base, long], ignore_index=True)


def _describe(
    frame: pd.DataFrame, paramcd: str, population: str, arms: Sequence[str], baseline: str
) -> list[AnalysisRecord]:
    """Summaries of the value and the change by arm (or pooled) and visit."""
    from analysis.descriptive import describe

    pooled = "arm" not in frame.columns
    data = frame.assign(arm=POOLED) if pooled else frame
    out: list[AnalysisRecord] = []
    visits = list(dict.fromkeys(data["avisit"]))
    for variable in ("aval", "chg"):
        rows = data if variable == "aval" else data[data["avisit"] != baseline]
        table = describe(rows, value=variable, arm="arm", visit="avisit", pooled=None if pooled else POOLED)
        by_cell = {(r.arm, r.visit): r for r in table.rows}
        order = [POOLED] if pooled else [*arms, POOLED]
        for visit in visits:
            for arm in order:
                cell = by_cell.get((arm, visit))
                if cell is None:
                    continue
                is_pooled = arm == POOLED
                out.append(
                    AnalysisRecord(
                        estimate=cell.mean,
                        n=cell.n,
                        method=f"mean and summary statistics; {table.method}",
                        parameters=as_parameters(
                            paramcd=paramcd, variable=variable.upper(), visit=visit, pooled=is_pooled
                        ),
                        analysis_id=_aid("DESCRIPTIVE", paramcd, variable.upper(), arm, visit),
                        population=population,
                        arm=None if is_pooled else arm,
                        statistics={
                            "sd": cell.sd,
                            "median": cell.median,
                            "q1": cell.q1,
                            "q3": cell.q3,
                            "min": cell.min,
                            "max": cell.max,
                            "n_missing": cell.n_missing,
                        },
                    )
                )
        if variable == "aval":
            for visit in visits:
                cell = by_cell.get((POOLED, visit))
                if cell is None:
                    continue
                total = cell.n + cell.n_missing
                out.append(
                    AnalysisRecord(
                        estimate=cell.n / total if total else math.nan,
                        n=total,
                        method="proportion of the population with an analysed value at the visit",
                        parameters=as_parameters(paramcd=paramcd, visit=visit, pooled=True),
                        analysis_id=_aid("COMPLETENESS", paramcd, visit),
                        population=population,
                        statistics={"observed": cell.n, "missing": cell.n_missing},
                    )
                )
    return out


def _continuous(run: _Run, target: _Target) -> None:
    spec = run.spec
    ep = target.endpoint
    is_primary = target.estimand == spec.primary_estimand
    cmp = target.comparison
    ident = target.identity(comparison=cmp)
    state: dict[str, Any] = {}

    def prepare() -> pd.DataFrame:
        people = run.population(target.population)
        ice = run.ice(target, people)
        state["people"], state["ice"] = people, ice
        return run.long(ep.paramcd, people, ice)

    def mmrm_records() -> list[AnalysisRecord]:
        long = prepare()
        state["long"] = long
        key = ("MMRM", ep.paramcd, target.population.code, _ice_key(target), target.control, "prorated")
        fit = run.mmrm(target, long, covariates=spec.covariates, key=key)
        state["fit"] = fit
        ice_notes = tuple(state["ice"].notes)
        out = []
        for d in fit.differences:
            if d.parameters["arm"] != target.experimental:
                continue
            visit = d.parameters["visit"]
            out.append(
                _record(
                    d,
                    analysis_id=target.aid("MMRM", cmp, visit),
                    primary=is_primary and visit == ep.visit,
                    notes=ice_notes,
                    parameters={"visit": visit},
                    **ident,
                )
            )
        for m in fit.lsmeans:
            if m.parameters["arm"] in (target.experimental, target.control):
                out.append(
                    _record(
                        m,
                        analysis_id=target.aid("MMRM", "LSMEAN", m.parameters["arm"], m.parameters["visit"]),
                        arm=m.parameters["arm"],
                        **target.identity(),
                    )
                )
        return out

    failure = [
        {"analysis_id": target.aid("MMRM", cmp, v), "parameters": {"visit": v}, "method": "MMRM", **ident}
        for v in spec.visits
    ]
    run.attempt(f"{target.aid('MMRM')}", mmrm_records, failure, primary=is_primary)
    if "long" not in state:
        try:
            state["long"] = prepare()
        except _FAILURES:
            return

    long: pd.DataFrame = state["long"]
    at_visit = long[long["avisit"] == ep.visit]

    def hedges() -> list[AnalysisRecord]:
        from analysis.effect_size import hedges_g

        g = hedges_g(
            at_visit,
            outcome="chg",
            arm="arm",
            treatment=target.experimental,
            control=target.control,
            alpha=spec.alpha,
        )
        return [
            _record(
                g,
                analysis_id=target.aid("HEDGES_G", cmp, ep.visit),
                parameters={"visit": ep.visit},
                statistics={
                    "cohen_d": g.cohen_d,
                    "correction": g.correction,
                    "raw_difference": g.raw_difference,
                    "standardizer": g.standardizer,
                },
                **ident,
            )
        ]

    run.attempt(
        f"{target.aid('HEDGES_G')}", hedges, [{"analysis_id": target.aid("HEDGES_G", cmp, ep.visit), **ident}]
    )

    def adjusted_d() -> list[AnalysisRecord]:
        from analysis.effect_size import model_adjusted_effect_size

        if "fit" not in state:
            raise _NotEstimable("the MMRM was not estimable")
        diff = _difference(state["fit"], target.experimental, ep.visit)
        people = at_visit.drop_duplicates("subject")
        es = model_adjusted_effect_size(
            people,
            baseline="base",
            arm="arm",
            treatment=target.experimental,
            control=target.control,
            difference=diff,
        )
        return [
            _record(
                es,
                analysis_id=target.aid("ADJUSTED_D", cmp, ep.visit),
                parameters={"visit": ep.visit, "model": "MMRM"},
                statistics={
                    "raw_difference": es.raw_difference,
                    "standardizer": es.standardizer,
                    "standardizer_label": es.standardizer_label,
                },
                **ident,
            )
        ]

    run.attempt(
        f"{target.aid('ADJUSTED_D')}",
        adjusted_d,
        [{"analysis_id": target.aid("ADJUSTED_D", cmp, ep.visit), **ident}],
    )

    for supportive in spec.supportive:
        if supportive.estimand != target.estimand:
            continue

        def ancova(supportive: SupportiveSpec = supportive) -> list[AnalysisRecord]:
            from analysis.ancova import fit_ancova

            cov, by_visit = run.terms(supportive.covariates)
            fit = fit_ancova(
                at_visit,
                arm="arm",
                response="chg",
                reference_arm=target.control,
                covariates=[*by_visit, *cov],
                primary_arm=target.experimental,
                alpha=spec.alpha,
            )
            out = [
                _record(
                    fit.primary,
                    analysis_id=target.aid("ANCOVA", cmp, ep.visit),
                    parameters={"visit": ep.visit, "supportive_analysis": supportive.code},
                    **ident,
                )
            ]
            for m in fit.lsmeans:
                if m.parameters["arm"] in (target.experimental, target.control):
                    out.append(
                        _record(
                            m,
                            analysis_id=target.aid("ANCOVA", "LSMEAN", m.parameters["arm"], ep.visit),
                            arm=m.parameters["arm"],
                            parameters={"visit": ep.visit, "supportive_analysis": supportive.code},
                            **target.identity(),
                        )
                    )
            return out

        run.attempt(
            f"{target.aid('ANCOVA')}", ancova, [{"analysis_id": target.aid("ANCOVA", cmp, ep.visit), **ident}]
        )

    if not is_primary:
        return
    factors = [COVARIATE_COLUMNS[c] for c in spec.covariates if c not in ("baseline", "baseline_by_visit")]
    if spec.imputations is not None and spec.imputation_seed is not None:
        n_imp, seed = spec.imputations, spec.imputation_seed
        visits = [v for v in spec.visits if v in set(long.loc[long["chg"].notna(), "avisit"])]

        def mi_args() -> dict[str, Any]:
            return {
                "subject": "subject",
                "visit": "avisit",
                "arm": "arm",
                "response": "chg",
                "baseline": "base",
                "reference_arm": target.control,
                "seed": seed,
                "covariates": factors,
                "visits": visits,
                "primary_visit": ep.visit,
                "primary_arm": target.experimental,
                "n_imputations": n_imp,
                "alpha": spec.alpha,
            }

        def mi() -> list[AnalysisRecord]:
            from analysis.imputation import mi_ancova

            res = mi_ancova(long[long["avisit"].isin(visits)], **mi_args())
            return [
                _record(
                    res.primary,
                    analysis_id=target.aid("MI", cmp, ep.visit),
                    parameters={"visit": ep.visit},
                    statistics={"n_imputed": res.n_imputed},
                    **ident,
                )
            ]

        run.attempt(f"{target.aid('MI')}", mi, [{"analysis_id": target.aid("MI", cmp, ep.visit), **ident}])

        if spec.tipping_deltas:

            def tipping() -> list[AnalysisRecord]:
                from analysis.imputation import tipping_point

                res = tipping_point(
                    long[long["avisit"].isin(visits)], deltas=spec.tipping_deltas, **mi_args()
                )
                out = [
                    _record(
                        r,
                        analysis_id=target.aid(
                            "TIPPING", cmp, ep.visit, f"D{float(r.parameters['delta'])!r}"
                        ),
                        parameters={"visit": ep.visit},
                        **ident,
                    )
                    for r in res.results
                ]
                summary = AnalysisRecord(
                    estimate=math.nan if res.tipping_delta is None else float(res.tipping_delta),
                    method=(
                        "tipping point: the first shift of the grid at which the difference is no longer "
                        f"significant at alpha = {spec.alpha:g}; " + res.method
                    ),
                    parameters=as_parameters(
                        visit=ep.visit, deltas=tuple(spec.tipping_deltas), alpha=spec.alpha
                    ),
                    notes=(
                        ()
                        if res.tipping_delta is not None
                        else (
                            "no tipping point within the grid"
                            + (
                                " (significant at every shift)"
                                if res.significant_without_shift
                                else " (not significant without a shift)"
                            ),
                        )
                    ),
                    analysis_id=target.aid("TIPPING_POINT", cmp, ep.visit),
                    statistics={"significant_without_shift": res.significant_without_shift},
                    **ident,
                )
                return [*out, summary]

            run.attempt(
                f"{target.aid('TIPPING')}",
                tipping,
                [{"analysis_id": target.aid("TIPPING_POINT", cmp, ep.visit), **ident}],
            )

    if spec.without_prorating:
        if run.adqs_unprorated is None:
            run.notes.append(
                "the sensitivity analysis without prorating was not run: no unprorated data given"
            )
        else:

            def unprorated() -> list[AnalysisRecord]:
                long_u = run.long(ep.paramcd, state["people"], state["ice"], adqs=run.adqs_unprorated)
                key = (
                    "MMRM",
                    ep.paramcd,
                    target.population.code,
                    _ice_key(target),
                    target.control,
                    "unprorated",
                )
                fit = run.mmrm(target, long_u, covariates=spec.covariates, key=key)
                return [
                    _record(
                        _difference(fit, target.experimental, ep.visit),
                        analysis_id=target.aid("MMRM_UNPRORATED", cmp, ep.visit),
                        parameters={"visit": ep.visit, "prorating": False},
                        **ident,
                    )
                ]

            run.attempt(
                f"{target.aid('MMRM_UNPRORATED')}",
                unprorated,
                [{"analysis_id": target.aid("MMRM_UNPRORATED", cmp, ep.visit), **ident}],
            )

    for name in spec.subgroups:
        column = COVARIATE_COLUMNS[name]
        _subgroup(run, target, long, state, name, column)


def _subgroup(
    run: _Run, target: _Target, long: pd.DataFrame, state: dict[str, Any], name: str, column: str
) -> None:
    spec = run.spec
    ep = target.endpoint
    cmp = target.comparison
    ident = target.identity(comparison=cmp)

    def compute() -> list[AnalysisRecord]:
        from analysis.mmrm import fit_mmrm
        from analysis.subgroups import subgroup_estimates

        if column not in long.columns:
            raise KeyError(f"subgroup column {column!r} not in the subject-level table")
        data = long[long["chg"].notna()]
        names = [c for c in spec.covariates if COVARIATE_COLUMNS[c] != column]
        cov, by_visit = run.terms(names)

        def estimator(part: pd.DataFrame) -> Result:
            if part is data and "fit" in state:
                return _difference(state["fit"], target.experimental, ep.visit)
            visits = [v for v in spec.visits if v in set(part["avisit"])]
            fit = fit_mmrm(
                part,
                subject="subject",
                visit="avisit",
                arm="arm",
                response="chg",
                reference_arm=target.control,
                covariates=cov,
                visit_covariates=by_visit,
                visits=visits,
                primary_visit=ep.visit,
                primary_arm=target.experimental,
                df_method=spec.df_method,
                alpha=spec.alpha,
            )
            if not fit.converged:
                raise _NotEstimable("REML optimisation did not converge")
            return _difference(fit, target.experimental, ep.visit)

        res = subgroup_estimates(
            data, subgroup=column, estimator=estimator, scale="difference", alpha=spec.alpha
        )
        out = []
        for level in res.levels:
            r = level.result
            out.append(
                _record(
                    r,
                    analysis_id=target.aid("SUBGROUP", _id_part(name), _id_part(level.level), cmp, ep.visit),
                    parameters={"subgroup": name, "level": level.level, "visit": ep.visit},
                    **ident,
                )
            )
        interaction = _record(
            res.interaction,
            analysis_id=target.aid("SUBGROUP", _id_part(name), "INTERACTION", cmp, ep.visit),
            parameters={"visit": ep.visit},
            **ident,
        )
        out.append(replace(interaction, n=int(data.loc[data[column].notna(), "subject"].nunique())))
        return out

    run.attempt(
        f"{target.aid('SUBGROUP', name)}",
        compute,
        [{"analysis_id": target.aid("SUBGROUP", _id_part(name), "INTERACTION", cmp, ep.visit), **ident}],
    )


def _binary(run: _Run, target: _Target) -> None:
    spec = run.spec
    ep = target.endpoint
    cmp = target.comparison
    ident = target.identity(comparison=cmp)
    flag = "crit1fl" if ep.type == "responder" else "crit2fl"
    measures = ("RD", "RR", "OR", "NNT")

    def compute() -> list[AnalysisRecord]:
        import numpy as np

        from analysis.binary import compare_binary

        people = run.population(target.population)
        ice = run.ice(target, people)
        long = run.long(ep.paramcd, people, ice)
        at_visit = long[
            (long["avisit"] == ep.visit) & long["arm"].isin([target.experimental, target.control])
        ]
        y = at_visit[flag].map({"Y": 1.0, "N": 0.0}).astype(float)
        composite = at_visit["subject"].map(ice.composite).to_numpy() <= ep.day
        n_composite = int(np.sum(composite))
        y = y.where(~composite, 1.0 - float(ep.favourable))
        data = at_visit.assign(outcome=y)
        cov, by_visit = run.terms(spec.covariates)
        covariates = list(dict.fromkeys([*by_visit, *cov]))
        res = compare_binary(
            data,
            outcome="outcome",
            arm="arm",
            reference=target.control,
            outcome_is_favourable=ep.favourable,
            covariates=covariates,
            alpha=spec.alpha,
        )
        notes = (*ice.notes, *res.notes)
        if n_composite:
            notes = (
                *notes,
                f"{n_composite} participant(s) counted as unfavourable by the composite strategy",
            )
        c = res.comparison(target.experimental)
        counts = {
            "events": c.events,
            "n_arm": c.n,
            "events_control": c.events_reference,
            "n_control": c.n_reference,
        }
        out = []
        for measure, r in (("RD", c.risk_difference), ("RR", c.risk_ratio), ("OR", c.odds_ratio)):
            rec = _record(
                r,
                analysis_id=target.aid(measure, cmp, ep.visit),
                parameters={"visit": ep.visit},
                statistics=counts,
                notes=notes,
                **ident,
            )
            if measure == "OR" and any(n.startswith("quasi-complete separation") for n in r.notes):
                rec = replace(rec, estimate=math.nan, se=None, ci_low=None, ci_high=None, p_value=None)
            out.append(rec)
        nnt = c.nnt
        # The interval is (1/U, 1/L) of the risk difference's limits when they exclude 0; when
        # they include it, the interval runs through infinity and is given as text only.
        limits = sorted(abs(x) for x in nnt.reciprocal_limits)
        bounded = all(math.isfinite(x) for x in nnt.reciprocal_limits) and (
            nnt.reciprocal_limits[0] * nnt.reciprocal_limits[1] > 0
        )
        out.append(
            AnalysisRecord(
                estimate=nnt.estimate,
                ci_low=limits[0] if bounded else None,
                ci_high=limits[1] if bounded else None,
                method=(
                    f"number needed to treat ({nnt.kind or 'no difference'}), 1 / |risk difference|; "
                    "interval from the Newcombe limits (Altman 1998)"
                ),
                parameters=as_parameters(visit=ep.visit, alpha=spec.alpha),
                n=c.n + c.n_reference,
                notes=notes
                if bounded
                else (*notes, "the risk difference's interval includes 0: the NNT interval is in the text"),
                analysis_id=target.aid("NNT", cmp, ep.visit),
                statistics={
                    "rounded": nnt.rounded,
                    "kind": nnt.kind,
                    "text": nnt.text,
                    "reciprocal_limits": nnt.reciprocal_limits,
                },
                **ident,
            )
        )
        for p in res.proportions:
            out.append(
                _record(
                    p,
                    analysis_id=target.aid("PROPORTION", p.parameters["arm"], ep.visit),
                    arm=p.parameters["arm"],
                    parameters={"visit": ep.visit},
                    **target.identity(),
                )
            )
        return out

    run.attempt(
        f"{target.aid('BINARY')}",
        compute,
        [{"analysis_id": target.aid(m, cmp, ep.visit), **ident} for m in measures],
    )


def _tte_frame(run: _Run, target: _Target) -> tuple[pd.DataFrame, list[str]]:
    import numpy as np

    from analysis.survival import event_from_cnsr

    ep = target.endpoint
    people = run.population(target.population)
    ice = run.ice(target, people)
    rows = run.adtte[run.adtte["paramcd"] == ep.paramcd][["subject", "aval", "cnsr"]]
    keep = ["subject", "arm", *run.strata_columns()]
    data = rows.merge(people[keep], on="subject", how="inner")
    t = data["aval"].to_numpy(dtype=float)
    e = event_from_cnsr(data["cnsr"]).to_numpy(dtype=bool)
    censor = data["subject"].map(ice.censor).to_numpy(dtype=float)
    composite = data["subject"].map(ice.composite).to_numpy(dtype=float)
    notes = list(ice.notes)
    cut = censor < t
    t = np.where(cut, np.maximum(censor, 0.0), t)
    e = e & ~cut
    hit = composite < t
    if ep.favourable:
        t = np.where(hit, float(ep.day), t)
        e = e & ~hit
    else:
        t = np.where(hit, np.maximum(composite, 0.0), t)
        e = e | hit
    late = t > ep.day
    t = np.where(late, float(ep.day), t)
    e = e & ~late
    if cut.any():
        notes.append(f"{int(cut.sum())} participant(s) censored at an intercurrent event")
    if hit.any():
        notes.append(f"{int(hit.sum())} participant(s) changed by the composite strategy")
    return data.assign(time=t, event=e), notes


def _time_to_event(run: _Run, target: _Target) -> None:
    spec = run.spec
    ep = target.endpoint
    cmp = target.comparison
    ident = target.identity(comparison=cmp)
    state: dict[str, Any] = {}

    def frame() -> tuple[pd.DataFrame, list[str]]:
        if "data" not in state:
            state["data"] = _tte_frame(run, target)
        return state["data"]  # type: ignore[no-any-return]

    at_risk_days = [0.0, *sorted({float(d) for d in _visit_days(run, ep.day)})]

    def km() -> list[AnalysisRecord]:
        from analysis.survival import kaplan_meier

        data, notes = frame()
        res = kaplan_meier(
            data, time="time", event="event", arm="arm", at_risk_times=at_risk_days, alpha=spec.alpha
        )
        order = [a.code for a in spec.arms if a.code in {c.arm for c in res.curves}]
        out = []
        for arm in order:
            curve = res.curve(arm)
            steps, thinned = _km_curve(curve)
            out.append(
                _record(
                    curve.median,
                    analysis_id=target.aid("KM_MEDIAN", arm),
                    arm=arm,
                    notes=(*notes, *res.notes, *thinned),
                    statistics={
                        "n_events": curve.n_events,
                        "at_risk": {f"{t:g}": n for t, n in curve.at_risk},
                        "text": curve.median.text(),
                        "curve": steps,
                    },
                    parameters={"end_of_follow_up_day": ep.day},
                    **target.identity(),
                )
            )
            for day, record in _survival_at(curve, at_risk_days[1:], spec.alpha):
                out.append(
                    replace(
                        record,
                        analysis_id=target.aid("KM_SURVIVAL", arm, f"D{day:g}"),
                        arm=arm,
                        notes=tuple(notes),
                        parameters=as_parameters(**record.parameters, arm=arm, end_of_follow_up_day=ep.day),
                        **target.identity(),
                    )
                )
        return out

    run.attempt(f"{target.aid('KM')}", km, [])

    def pair() -> tuple[pd.DataFrame, list[str]]:
        data, notes = frame()
        two = data[data["arm"].isin([target.experimental, target.control])]
        events = two.groupby("arm")["event"].sum()
        for a in (target.experimental, target.control):
            if int(events.get(a, 0)) == 0:
                raise _NotEstimable(f"too few events: none in arm {a}")
        return two, notes

    def logrank() -> list[AnalysisRecord]:
        from analysis.survival import logrank_test

        two, notes = pair()
        res = logrank_test(two, time="time", event="event", arm="arm", strata=run.strata_columns())
        return [
            _record(
                res,
                analysis_id=target.aid("LOGRANK", cmp),
                notes=tuple(notes),
                statistics={
                    "groups": res.groups,
                    "observed": res.observed,
                    "expected": res.expected,
                },
                parameters={"end_of_follow_up_day": ep.day},
                **ident,
            )
        ]

    run.attempt(f"{target.aid('LOGRANK')}", logrank, [{"analysis_id": target.aid("LOGRANK", cmp), **ident}])

    def cox() -> list[AnalysisRecord]:
        from analysis.survival import cox_regression

        two, notes = pair()
        res = cox_regression(
            two,
            time="time",
            event="event",
            arm="arm",
            reference=target.control,
            strata=run.strata_columns(),
            event_is_favourable=ep.favourable,
            alpha=spec.alpha,
        )
        if any(n.startswith("the Cox model did not converge") for n in res.notes):
            raise _NotEstimable("the Cox model did not converge")
        hr = res.hazard_ratio(target.experimental)
        out = [
            _record(
                hr,
                analysis_id=target.aid("COX", cmp),
                notes=(*notes, *res.notes),
                statistics={"favours": hr.favours, "direction": res.direction, "n_events": res.n_events},
                parameters={"end_of_follow_up_day": ep.day},
                **ident,
            )
        ]
        for test in res.ph_tests:
            out.append(
                AnalysisRecord(
                    estimate=test.chisq,
                    df=float(test.df),
                    p_value=test.p_value,
                    n=res.n,
                    method=(
                        "proportional-hazards score test on scaled Schoenfeld residuals "
                        "(cox.zph, KM transform)"
                    ),
                    parameters=as_parameters(term=test.term, end_of_follow_up_day=ep.day),
                    analysis_id=target.aid("PH_TEST", cmp, _id_part(test.term)),
                    **ident,
                )
            )
        return out

    run.attempt(
        f"{target.aid('COX')}",
        cox,
        [
            {"analysis_id": target.aid("COX", cmp), **ident},
            {"analysis_id": target.aid("PH_TEST", cmp, "GLOBAL"), **ident},
        ],
    )


def _visit_days(run: _Run, end_day: int) -> list[int]:
    return [*(d for d in run.spec.visit_days if d <= end_day), end_day]


def _thin(times: Sequence[float], limit: int) -> list[int]:
    """Choose the indices kept of ascending `times`: all up to `limit`, else <= `limit` of them.

    The first index is always kept. The span from the first time to the last is cut into
    ``limit - 1`` bins of equal width (right-closed) and the last index in each non-empty bin
    is kept, so that the last index is kept too.
    """
    n = len(times)
    if n <= limit:
        return list(range(n))
    start, width = times[0], (times[-1] - times[0]) / (limit - 1)
    keep = [0]
    last_bin = 0
    for i in range(1, n):
        b = min(limit - 1, max(1, math.ceil((times[i] - start) / width))) if width > 0 else limit - 1
        if b == last_bin and keep[-1] != 0:
            keep[-1] = i
        else:
            keep.append(i)
        last_bin = b
    return keep


def _km_curve(
    curve: SurvivalCurve, limit: int = KM_CURVE_MAX_POINTS
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Give the step function of a Kaplan-Meier curve and its censoring times, for a figure.

    Returns ``({"time", "survival", "ci_low", "ci_high", "censored": {"time", "count"}},
    notes)``. The curve starts at time 0 with survival 1 (limits undefined there, as where the
    estimator's survival is 1), then has one point per distinct event time: the survival and
    log-log limits just after it. The censoring times are the distinct times with at least one
    censoring, with their counts. Each list has every point up to `limit` points; a longer one
    is thinned by :func:`_thin` (a curve keeps the point ending each bin, so the step drawn is
    exact at the kept times; censorings are counted at the last censoring time of their bin)
    and a note says so.
    """
    events = [i for i, d in enumerate(curve.n_event) if d > 0]
    time = [0.0, *(curve.time[i] for i in events)]
    survival = [1.0, *(curve.survival[i] for i in events)]
    low = [math.nan, *(curve.ci_low[i] for i in events)]
    high = [math.nan, *(curve.ci_high[i] for i in events)]
    censored = [(t, c) for t, c in zip(curve.time, curve.n_censor, strict=True) if c > 0]
    notes = []
    keep = _thin(time, limit)
    if len(keep) < len(time):
        notes.append(
            f"the Kaplan-Meier curve's {len(time)} points are thinned to {len(keep)} in "
            "statistics.curve (the last point of each of equal time bins is kept)"
        )
        time, survival, low, high = ([v[i] for i in keep] for v in (time, survival, low, high))
    ctime = [t for t, _ in censored]
    ccount = [c for _, c in censored]
    ckeep = _thin(ctime, limit)
    if len(ckeep) < len(ctime):
        notes.append(
            f"the {len(ctime)} censoring times are thinned to {len(ckeep)} in statistics.curve "
            "(the censorings of each of equal time bins are counted at its last censoring time)"
        )
        bounds = [-1, *ckeep]
        ccount = [sum(ccount[a + 1 : b + 1]) for a, b in zip(bounds, bounds[1:], strict=False)]
        ctime = [ctime[i] for i in ckeep]
    steps = {
        "time": time,
        "survival": survival,
        "ci_low": low,
        "ci_high": high,
        "censored": {"time": ctime, "count": ccount},
    }
    return steps, tuple(notes)


def _survival_at(
    curve: SurvivalCurve, days: Sequence[float], alpha: float
) -> list[tuple[float, AnalysisRecord]]:
    """Kaplan-Meier survival and its log-log interval at given days (as R's summary(times=))."""
    import bisect

    out = []
    for day in dict.fromkeys(days):
        k = bisect.bisect_right(curve.time, day) - 1
        if k < 0:  # before the first observed time
            s, low, high = 1.0, math.nan, math.nan
        else:
            s, low, high = curve.survival[k], curve.ci_low[k], curve.ci_high[k]
        at_risk = next((n for t, n in zip(curve.time, curve.n_risk, strict=True) if t >= day), 0)
        out.append(
            (
                day,
                AnalysisRecord(
                    estimate=s,
                    ci_low=low,
                    ci_high=high,
                    n=curve.n,
                    method="Kaplan-Meier survival at the day; Greenwood variance; log-log interval",
                    parameters=as_parameters(day=day, alpha=alpha),
                    statistics={"n_at_risk": at_risk},
                ),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Multiplicity and CONSORT
# --------------------------------------------------------------------------------------------


def _test_id(target: _Target) -> str:
    ep = target.endpoint
    cmp = target.comparison
    if ep.type == "continuous_change":
        return target.aid("MMRM", cmp, ep.visit)
    if ep.type in ("responder", "remission"):
        return target.aid("OR", cmp, ep.visit)
    return target.aid("LOGRANK", cmp)


def _hierarchy(run: _Run, targets: Sequence[_Target]) -> None:
    spec = run.spec
    if not spec.hierarchy:
        return
    primary = spec.estimand(spec.primary_estimand)

    def compute() -> list[AnalysisRecord]:
        import pandas as pd

        from analysis.multiplicity import fixed_sequence, holm

        by_id = {r.analysis_id: r for r in run.records}
        rows = []
        sources = []
        for code in spec.hierarchy:
            candidates = [
                t
                for t in targets
                if t.endpoint.code == code
                and t.estimand is not None
                and (t.experimental, t.control) == (primary.experimental, primary.control)
            ]
            candidates.sort(key=lambda t: t.estimand != spec.primary_estimand)
            note = ""
            p = 1.0
            target = candidates[0] if candidates else None
            source = _test_id(target) if target else None
            record = by_id.get(source) if source else None
            if target is None:
                note = "no estimand for the primary comparison: counted as not rejected"
            elif record is None or record.p_value is None or not math.isfinite(record.p_value):
                note = "p-value not available: counted as not rejected"
            else:
                p = record.p_value
            rows.append({"hypothesis": code, "p_value": p})
            sources.append((target, source, note))
        frame = pd.DataFrame(rows)
        procedure = fixed_sequence if spec.hierarchy_procedure == "fixed_sequence" else holm
        res = procedure(frame, alpha=spec.alpha)
        out = []
        for decision, (target, source, note) in zip(res.decisions, sources, strict=True):
            out.append(
                AnalysisRecord(
                    estimate=decision.adjusted_p,
                    p_value=decision.adjusted_p,
                    method=f"{res.method}; estimate and p_value are the adjusted p-value",
                    parameters=as_parameters(
                        procedure=spec.hierarchy_procedure, position=decision.position, alpha=spec.alpha
                    ),
                    notes=(note,) if note else (),
                    analysis_id=_aid("HIERARCHY", decision.position, decision.hypothesis),
                    endpoint=decision.hypothesis,
                    estimand=target.estimand if target else None,
                    population=target.population.code if target else None,
                    comparison=target.comparison if target else None,
                    statistics={
                        "raw_p": decision.raw_p,
                        "tested": decision.tested,
                        "rejected": decision.rejected,
                        "source": source,
                    },
                )
            )
        return out

    run.attempt("hierarchy", compute, [])


def _consort_records(counts: ConsortCounts, population: str | None) -> list[AnalysisRecord]:
    def box(stage: str, value: int | None, arm: str | None = None, **stats: Any) -> AnalysisRecord:
        return AnalysisRecord(
            estimate=math.nan if value is None else float(value),
            n=value,
            method="count of participants (CONSORT 2010 flow diagram)",
            parameters=as_parameters(stage=stage.lower(), pooled=arm is None),
            analysis_id=_aid("CONSORT", stage, arm),
            arm=arm,
            population=population if stage in ("ANALYSED", "EXCLUDED_FROM_ANALYSIS") else None,
            statistics=stats,
            notes=counts.notes if stage == "SCREENED" else (),
        )

    out = [
        box("SCREENED", counts.screened),
        box("EXCLUDED", counts.excluded),
        box("NOT_ELIGIBLE", counts.not_eligible, reasons=dict(counts.excluded_reasons)),
        box("DECLINED", counts.declined),
        box("RANDOMIZED", counts.randomized),
        box("LOST_TO_FOLLOW_UP", counts.lost_to_follow_up),
        box("DISCONTINUED", counts.discontinued),
    ]
    for a in counts.arms:
        out += [
            box("ALLOCATED", a.allocated, a.arm),
            box("RECEIVED", a.received, a.arm),
            box("NOT_RECEIVED", a.not_received, a.arm),
            box("LOST_TO_FOLLOW_UP", a.lost_to_follow_up, a.arm),
            box("DISCONTINUED", a.discontinued, a.arm, reasons=dict(a.discontinued_reasons)),
            box("ANALYSED", a.analysed, a.arm),
            box("EXCLUDED_FROM_ANALYSIS", a.excluded_from_analysis, a.arm),
        ]
    return out


def _consort(run: _Run, screening: pd.DataFrame | None) -> None:
    from analysis.consort import consort_counts

    start = _time.perf_counter()
    flag = _full_analysis_flag(run.spec)
    counts = consort_counts(
        run.adsl,
        screening=screening,
        arm="arm",
        arms=[a.code for a in run.spec.arms],
        app_arms={a.code for a in run.spec.arms if a.has_app},
        analysed_flag=flag,
    )
    population = next((p.code for p in run.spec.populations if p.flag == flag), None)
    run.records.extend(_consort_records(counts, population))
    if run.timings is not None:
        run.timings.append(("CONSORT counts", _time.perf_counter() - start))


# --------------------------------------------------------------------------------------------
# The blinded path
# --------------------------------------------------------------------------------------------


def _run_blinded(
    adsl: pd.DataFrame,
    adqs: pd.DataFrame,
    adtte: pd.DataFrame,
    *,
    trial: str,
    visits: tuple[str, ...],
    visit_days: tuple[int, ...],
    endpoints: tuple[EndpointSpec, ...],
    population_flag: str,
    population_code: str,
    alpha: float,
    input_sha256: str,
    screening: pd.DataFrame | None,
    timings: list[tuple[str, float]] | None,
) -> ResultsDocument:
    """Pooled results only; receives no arm column and no part of the plan naming an arm."""
    from analysis.consort import consort_counts
    from analysis.survival import event_from_cnsr, kaplan_meier

    records: list[AnalysisRecord] = []
    notes: list[str] = [
        "blinded: only pooled results; no result by arm or comparing arms is computed before unblinding"
    ]

    def timed(label: str, compute: Callable[[], list[AnalysisRecord]]) -> None:
        start = _time.perf_counter()
        try:
            with captured_warnings() as caught:
                out = compute()
        except _FAILURES as exc:
            out, caught = [], []
            notes.append(f"{label}: not estimable: {exc}")
        if timings is not None:
            timings.append((label, _time.perf_counter() - start))
        records.extend(replace(r, notes=(*r.notes, *caught)) for r in out)

    # Only what cannot depend on the arm is kept of the subject-level table.
    keep = [c for c in ("subject", population_flag, "eos_status") if c in adsl.columns]
    people = adsl.loc[adsl[population_flag] == "Y", keep] if population_flag in adsl.columns else adsl[keep]
    baseline, post = visits[0], visits[1:]
    for paramcd in dict.fromkeys(e.paramcd for e in endpoints if e.type != "time_to_event"):

        def describe_pooled(paramcd: str = paramcd) -> list[AnalysisRecord]:
            import numpy as np
            import pandas as pd

            rows = adqs[(adqs["paramcd"] == paramcd) & (adqs["anl01fl"] == "Y")]
            base = rows[rows["ablfl"] == "Y"].drop_duplicates("subject").set_index("subject")["aval"]
            at = rows[rows["avisit"].isin(post) & (rows["ady"] > 0)][["subject", "avisit", "aval", "chg"]]
            subjects = people["subject"].to_numpy()
            grid = pd.DataFrame(
                {
                    "subject": np.repeat(subjects, len(post)),
                    "avisit": np.tile(np.asarray(post, dtype=object), len(subjects)),
                }
            ).merge(at, on=["subject", "avisit"], how="left", validate="one_to_one")
            first = pd.DataFrame(
                {
                    "subject": subjects,
                    "avisit": baseline,
                    "aval": pd.Series(subjects).map(base).to_numpy(),
                    "chg": np.nan,
                }
            )
            frame = pd.concat([first, grid], ignore_index=True)
            frame["aval"] = frame["aval"].astype("Float64").astype(float)
            frame["chg"] = frame["chg"].astype("Float64").astype(float)
            return _describe(frame, paramcd, population_code, (), baseline)

        timed(f"pooled descriptive statistics {paramcd}", describe_pooled)

    for ep in endpoints:
        if ep.type != "time_to_event":
            continue
        if not ep.all_arms:
            notes.append(
                f"endpoint {ep.code} exists in some arms only: its pooled summary would reveal the "
                "allocation and is left out while blinded"
            )
            continue

        def km_pooled(ep: EndpointSpec = ep) -> list[AnalysisRecord]:
            import numpy as np

            rows = adtte[adtte["paramcd"] == ep.paramcd][["subject", "aval", "cnsr"]]
            rows = rows[rows["subject"].isin(people["subject"])]
            t = rows["aval"].to_numpy(dtype=float)
            e = event_from_cnsr(rows["cnsr"]).to_numpy(dtype=bool)
            late = t > ep.day
            data = rows.assign(time=np.where(late, float(ep.day), t), event=e & ~late)
            days = [*(d for d in visit_days if d <= ep.day), ep.day]
            at_risk_days = [0.0, *sorted({float(d) for d in days})]
            res = kaplan_meier(data, time="time", event="event", at_risk_times=at_risk_days, alpha=alpha)
            curve = res.curves[0]
            m = curve.median
            steps, thinned = _km_curve(curve)
            landmarks = [
                replace(
                    record,
                    analysis_id=_aid(ep.code, "KM_SURVIVAL", POOLED, f"D{day:g}"),
                    endpoint=ep.code,
                    population=population_code,
                    parameters=as_parameters(**record.parameters, end_of_follow_up_day=ep.day, pooled=True),
                )
                for day, record in _survival_at(curve, days, alpha)
            ]
            return [
                AnalysisRecord(
                    estimate=m.estimate,
                    ci_low=m.ci_low,
                    ci_high=m.ci_high,
                    n=m.n,
                    method=m.method,
                    parameters=as_parameters(end_of_follow_up_day=ep.day, pooled=True, alpha=alpha),
                    notes=(*m.notes, *res.notes, *thinned),
                    analysis_id=_aid(ep.code, "KM_MEDIAN", POOLED),
                    endpoint=ep.code,
                    population=population_code,
                    statistics={
                        "n_events": curve.n_events,
                        "at_risk": {f"{t:g}": n for t, n in curve.at_risk},
                        "text": m.text(),
                        "curve": steps,
                    },
                ),
                *landmarks,
            ]

        timed(f"pooled Kaplan-Meier {ep.code}", km_pooled)

    start = _time.perf_counter()
    counts = consort_counts(
        adsl[[*keep, *([] if population_flag in keep else [population_flag])]],
        screening=screening,
        arm=None,
        analysed_flag=population_flag,
    )
    records.extend(_consort_records(counts, None))
    if timings is not None:
        timings.append(("pooled CONSORT counts", _time.perf_counter() - start))
    return ResultsDocument(
        trial=trial,
        blinded=True,
        input_sha256=input_sha256,
        alpha=alpha,
        results=tuple(records),
        notes=tuple(notes),
        software=_software(),
    )
