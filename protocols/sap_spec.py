"""A protocol document's analysis plan, as the plain specifications that `analysis` reads.

`analysis` imports nothing of ours, so it cannot read a `ProtocolDocument`: it defines plain
frozen specifications (`analysis.sap.SapSpec`, `analysis.datasets.DatasetSpec`) and this module
fills them from a validated document. Everything the analyses need is taken from the document;
the few things the schema does not declare are fixed here and named:

- which analysis-dataset parameter an endpoint is read from (`PARAMCD` of the instrument; the
  time-to-event parameters of `analysis.datasets.time_to_event`);
- where the data record each intercurrent event (`ICE_COLUMNS`, by the event's code);
- the gap without app use that makes stopping use (`STOP_APP_GAP_DAYS`).
"""

from typing import Final

from analysis.datasets import PARAMCD, DatasetSpec, ProratingSpec, VisitSpec
from analysis.sap import (
    POPULATION_FLAGS,
    ArmSpec,
    EndpointSpec,
    EstimandSpec,
    IntercurrentEventSpec,
    PopulationSpec,
    SapSpec,
    StrategySpec,
    SupportiveSpec,
)
from protocols.document import Endpoint, ProtocolDocument

__all__ = ["ICE_COLUMNS", "STOP_APP_GAP_DAYS", "TTE_PARAMCD", "dataset_spec_of", "sap_spec_of"]

#: Time-to-event kinds of the schema and the ADTTE parameter each is derived into.
TTE_PARAMCD: Final = {
    "first_response": "TTRESP",
    "first_remission": "TTREMIT",
    "stopping_app_use": "TTSTOPAP",
    "withdrawal": "TTLEAVE",
}
#: Events that a participant wants sooner (a higher hazard is better).
FAVOURABLE_EVENTS: Final = frozenset({"first_response", "first_remission"})

#: Intercurrent-event codes and the subject-level date columns that record them (the earliest
#: counts). The schema gives intercurrent events a free code and a description only; an event
#: whose code is not listed here is taken as not recorded, and the analyses say so.
ICE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "STOP_APP": ("stopped_app_use_on",),
    "NEW_TREATMENT": ("started_other_treatment_on", "changed_other_treatment_on"),
    "WITHDRAWAL": ("withdrawal_on",),
    "CRISIS": ("crisis_treatment_change_on",),
}

#: Days without app use that make "stopping use" (the example protocol's definition).
STOP_APP_GAP_DAYS: Final = 14


def _endpoint(document: ProtocolDocument, endpoint: Endpoint) -> EndpointSpec:
    visit = document.visit(endpoint.visit)
    if endpoint.type == "time_to_event":
        event = endpoint.event
        if event is None:  # the schema requires it; refused here too rather than assumed
            raise ValueError(f"endpoint {endpoint.code}: a time-to-event endpoint without an event")
        if event in FAVOURABLE_EVENTS and endpoint.instrument != "PHQ-9":
            raise ValueError(
                f"endpoint {endpoint.code}: time to {event.replace('_', ' ')} is derived from the PHQ-9 only"
            )
        all_arms = event != "stopping_app_use" or all(a.app_name is not None for a in document.arms)
        return EndpointSpec(
            code=endpoint.code,
            type="time_to_event",
            paramcd=TTE_PARAMCD[event],
            visit=visit.code,
            day=visit.day,
            favourable=event in FAVOURABLE_EVENTS,
            all_arms=all_arms,
            name=endpoint.name,
        )
    if endpoint.instrument is None:
        raise ValueError(f"endpoint {endpoint.code}: a {endpoint.type} endpoint without an instrument")
    return EndpointSpec(
        code=endpoint.code,
        type=endpoint.type,
        paramcd=PARAMCD[endpoint.instrument],
        visit=visit.code,
        day=visit.day,
        favourable=True,
        name=endpoint.name,
    )


def sap_spec_of(document: ProtocolDocument) -> SapSpec:
    """The analysis plan of a validated protocol document, as `analysis.sap.run_sap` reads it."""
    sap = document.sap
    post = sorted((v for v in document.visits if v.day > 0), key=lambda v: v.day)
    populations = {p.code: p for p in document.populations}
    missing = sap.missing_data
    imputation = missing.multiple_imputation
    return SapSpec(
        trial=document.trial.code,
        arms=tuple(ArmSpec(a.code, has_app=a.app_name is not None) for a in document.arms),
        baseline_visit=document.baseline_visit.code,
        visits=tuple(v.code for v in post),
        visit_days=tuple(v.day for v in post),
        endpoints=tuple(_endpoint(document, e) for e in document.endpoints),
        estimands=tuple(
            EstimandSpec(
                code=e.code,
                endpoint=e.endpoint,
                experimental=e.treatment.experimental,
                control=e.treatment.control,
                population=e.population,
                strategies=tuple(StrategySpec(s.event, s.strategy) for s in e.intercurrent_events),
                summary=e.population_level_summary.measure,
            )
            for e in document.estimands
        ),
        populations=tuple(PopulationSpec(p.code, POPULATION_FLAGS[p.kind]) for p in populations.values()),
        intercurrent_events=tuple(
            IntercurrentEventSpec(e.code, ICE_COLUMNS.get(e.code, ())) for e in document.intercurrent_events
        ),
        primary_estimand=sap.primary_analysis.estimand,
        covariates=tuple(sap.primary_analysis.covariates),
        strata=tuple(document.randomization.strata),
        hierarchy=tuple(sap.testing_hierarchy.endpoints),
        hierarchy_procedure=sap.testing_hierarchy.procedure,
        alpha=sap.alpha,
        df_method=sap.primary_analysis.df_method,
        supportive=tuple(
            SupportiveSpec(s.code, s.estimand, tuple(s.covariates)) for s in sap.supportive_analyses
        ),
        imputations=imputation.imputations if imputation else None,
        imputation_seed=imputation.seed if imputation else None,
        tipping_deltas=tuple(missing.tipping_point.deltas) if missing.tipping_point else (),
        without_prorating=missing.without_prorating,
    )


def dataset_spec_of(document: ProtocolDocument) -> DatasetSpec:
    """The derivation settings of a validated protocol document (visit windows, windowing rule,
    prorating, response and remission, treatment period, per-protocol rule)."""
    sap = document.sap
    visits = tuple(VisitSpec(v.code, v.day, *v.window) for v in sorted(document.visits, key=lambda v: v.day))
    per_protocol = next((p for p in document.populations if p.kind == "per_protocol"), None)
    engagement = per_protocol.engagement if per_protocol else None
    pp_visit = document.visit(engagement.by_visit) if engagement else None
    primary_visit = document.visit(document.primary_endpoint.visit)
    tte_days = [document.visit(e.visit).day for e in document.endpoints if e.type == "time_to_event"]
    prorating = sap.prorating
    return DatasetSpec(
        visits=visits,
        tie_break=sap.visit_windowing.tie_break,
        window_rule=sap.visit_windowing.rule,
        prorate=prorating.enabled,
        prorating={
            code: ProratingSpec(rule.min_items_answered, tuple(rule.required_items))
            for code, rule in prorating.rules.items()
        },
        response_reduction_percent=sap.definitions.response.min_reduction_percent,
        remission_below=dict(sap.definitions.remission_below),
        # The treatment period ends at the engagement rule's visit, or else at the primary visit.
        treatment_end_day=(pp_visit or primary_visit).day,
        stop_app_gap_days=STOP_APP_GAP_DAYS,
        follow_up_day=max(tte_days) if tte_days else max(v.day for v in document.visits),
        app_arms=frozenset(a.code for a in document.arms if a.app_name is not None),
        pp_min_modules=engagement.min_modules_completed if engagement else None,
        pp_by_day=pp_visit.day if pp_visit else None,
        pp_visit=pp_visit.code if pp_visit else None,
    )
