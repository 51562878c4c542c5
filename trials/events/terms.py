"""The vocabulary of adverse events and of disposition and intercurrent events, and the one table
that maps it to CDISC SDTM submission values.

Records store our own lower_snake codes (below); an SDTM export imports `SDTM` and
`SERIOUS_CRITERION_VARIABLES` and never spells a submission value itself. Free of the database
and the web: any layer may import it.

Sources of the submission values: CDISC controlled terminology for AESEV (codelist AESEV),
AEOUT (OUT), AEACN (ACN), DSCAT (DSCAT) and, for disposition events, DSDECOD (NCOMPLT); AESER
and the serious criteria flags are Y/N (NY, `YES_NO`). AEREL and AEACNDEV have no CDISC
codelist: their values are ours (sponsor-defined), and so is DSDECOD of an "OTHER EVENT" (the
intercurrent events of a digital therapy).
"""

from types import MappingProxyType
from typing import Final, Literal, get_args

# -- adverse events -------------------------------------------------------------------------------

Severity = Literal["mild", "moderate", "severe"]
SeriousCriterion = Literal[
    "death",
    "life_threatening",
    "hospitalization",
    "disability",
    "congenital_anomaly",
    "other_medically_important",
]
# Relatedness to the app (the investigational product of a digital-therapy trial).
Relatedness = Literal["not_related", "unlikely", "possible", "probable", "related"]
# Action taken with the app because of the event.
AppAction = Literal["none", "app_use_interrupted", "app_withdrawn", "not_applicable", "unknown"]
Outcome = Literal[
    "recovered_resolved",
    "recovering_resolving",
    "not_recovered_not_resolved",
    "recovered_resolved_with_sequelae",
    "fatal",
    "unknown",
]

SEVERITIES: Final = get_args(Severity)
SERIOUS_CRITERIA: Final = get_args(SeriousCriterion)
RELATEDNESS: Final = get_args(Relatedness)
APP_ACTIONS: Final = get_args(AppAction)
OUTCOMES: Final = get_args(Outcome)

# Outcomes of an event that has not ended: such an event has no end date.
ONGOING_OUTCOMES: Final = frozenset({"recovering_resolving", "not_recovered_not_resolved"})

# -- disposition and intercurrent events ------------------------------------------------------------

DispositionKind = Literal[
    # end of study: at most one current per participant
    "withdrawal_by_subject",
    "withdrawal_by_investigator",
    "lost_to_follow_up",
    "completed",
    # intercurrent events (ICH E9(R1)) of a digital therapy
    "stopped_app_use",
    "started_other_treatment",
    "changed_other_treatment",
    "crisis_treatment_change",
]
OtherTreatment = Literal["antidepressant", "psychotherapy"]

DISPOSITION_KINDS: Final = get_args(DispositionKind)
OTHER_TREATMENTS: Final = get_args(OtherTreatment)
END_OF_STUDY_KINDS: Final = (
    "withdrawal_by_subject",
    "withdrawal_by_investigator",
    "lost_to_follow_up",
    "completed",
)
WITHDRAWAL_KINDS: Final = ("withdrawal_by_subject", "withdrawal_by_investigator")
INTERCURRENT_KINDS: Final = tuple(k for k in DISPOSITION_KINDS if k not in END_OF_STUDY_KINDS)
# Kinds that say which other treatment (antidepressant or psychotherapy): required for the first
# two, optional for a crisis, refused for every other kind.
TREATMENT_REQUIRED_KINDS: Final = ("started_other_treatment", "changed_other_treatment")
TREATMENT_ALLOWED_KINDS: Final = (*TREATMENT_REQUIRED_KINDS, "crisis_treatment_change")
# Kinds that only a randomized participant can have, dated on or after randomization.
AFTER_RANDOMIZATION_KINDS: Final = ("completed", *INTERCURRENT_KINDS)

KIND_TEXT: Final = MappingProxyType(
    {
        "withdrawal_by_subject": "withdrawal by the participant",
        "withdrawal_by_investigator": "withdrawal by the investigator",
        "lost_to_follow_up": "lost to follow-up",
        "completed": "completed (final visit attended)",
        "stopped_app_use": "stopped using the app",
        "started_other_treatment": "started another treatment",
        "changed_other_treatment": "changed another treatment",
        "crisis_treatment_change": "crisis leading to a change of treatment",
    }
)


def category_of(kind: str) -> str:
    """ "end_of_study" or "intercurrent"."""
    return "end_of_study" if kind in END_OF_STUDY_KINDS else "intercurrent"


# -- the mapping to SDTM ----------------------------------------------------------------------------

_DS_END = "DISPOSITION EVENT"
_DS_OTHER = "OTHER EVENT"

# SDTM variable -> our code -> submission value.
SDTM: Final = MappingProxyType(
    {
        "AESEV": MappingProxyType({"mild": "MILD", "moderate": "MODERATE", "severe": "SEVERE"}),
        "AEREL": MappingProxyType(
            {
                "not_related": "NOT RELATED",
                "unlikely": "UNLIKELY RELATED",
                "possible": "POSSIBLY RELATED",
                "probable": "PROBABLY RELATED",
                "related": "RELATED",
            }
        ),
        # Action with the study treatment (ACN): the app stands for the treatment.
        "AEACN": MappingProxyType(
            {
                "none": "DOSE NOT CHANGED",
                "app_use_interrupted": "DRUG INTERRUPTED",
                "app_withdrawn": "DRUG WITHDRAWN",
                "not_applicable": "NOT APPLICABLE",
                "unknown": "UNKNOWN",
            }
        ),
        # Action with the device (SDTMIG-MD), in the app's own words.
        "AEACNDEV": MappingProxyType(
            {
                "none": "NONE",
                "app_use_interrupted": "APP USE INTERRUPTED",
                "app_withdrawn": "APP WITHDRAWN",
                "not_applicable": "NOT APPLICABLE",
                "unknown": "UNKNOWN",
            }
        ),
        "AEOUT": MappingProxyType(
            {
                "recovered_resolved": "RECOVERED/RESOLVED",
                "recovering_resolving": "RECOVERING/RESOLVING",
                "not_recovered_not_resolved": "NOT RECOVERED/NOT RESOLVED",
                "recovered_resolved_with_sequelae": "RECOVERED/RESOLVED WITH SEQUELAE",
                "fatal": "FATAL",
                "unknown": "UNKNOWN",
            }
        ),
        "DSCAT": MappingProxyType(
            {kind: _DS_END if kind in END_OF_STUDY_KINDS else _DS_OTHER for kind in DISPOSITION_KINDS}
        ),
        "DSDECOD": MappingProxyType(
            {
                "withdrawal_by_subject": "WITHDRAWAL BY SUBJECT",
                "withdrawal_by_investigator": "PHYSICIAN DECISION",
                "lost_to_follow_up": "LOST TO FOLLOW-UP",
                "completed": "COMPLETED",
                "stopped_app_use": "STOPPED USING THE APP",
                "started_other_treatment": "STARTED OTHER TREATMENT",
                "changed_other_treatment": "CHANGED OTHER TREATMENT",
                "crisis_treatment_change": "CRISIS LEADING TO A CHANGE OF TREATMENT",
            }
        ),
    }
)

# AESER and each serious criterion's flag: NY codelist.
YES_NO: Final = MappingProxyType({True: "Y", False: "N"})

# A serious criterion -> its SDTM flag (Y when the criterion is met, N otherwise).
SERIOUS_CRITERION_VARIABLES: Final = MappingProxyType(
    {
        "death": "AESDTH",
        "life_threatening": "AESLIFE",
        "hospitalization": "AESHOSP",
        "disability": "AESDISAB",
        "congenital_anomaly": "AESCONG",
        "other_medically_important": "AESMIE",
    }
)
