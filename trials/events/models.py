"""Adverse events, disposition and intercurrent events, and emergency unblindings.

Design:

- `AdverseEvent`: one row per event of one participant. The serious criteria are one boolean
  column each (they map one to one to the SDTM flags AESDTH, AESLIFE, ...); `serious` is true
  exactly when one of them is (a check constraint holds it). Changed in place under a reason
  (the audit trail keeps old and new values).
- `DispositionEvent`: one table for the end of study (withdrawal by the participant or by the
  investigator, lost to follow-up, completed) and the intercurrent events of a digital therapy
  (stopped using the app, started or changed another treatment, crisis leading to a change of
  treatment), told apart by `kind` (`terms.category_of`). A participant has at most one
  *current* end-of-study event (a partial unique index holds it); an event is changed in place
  under a reason, or retracted under a reason (a participant lost to follow-up and found again,
  an entry in error): a retracted event stays, with `status = 'retracted'`.
- `EmergencyUnblinding`: who revealed whose arm, when and why, never the arm itself (the audit
  trail, where the row is recorded, is readable by blinded roles).

None of them is ever deleted: the ORM refuses it (below) and database triggers (migration 0006)
refuse it underneath. None carries an arm.
"""

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Strict
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    Uuid,
    event,
    text,
)
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.errors import Conflict
from trials.core.validation import PLAIN_TEXT, IsoDate
from trials.events.terms import (
    APP_ACTIONS,
    DISPOSITION_KINDS,
    END_OF_STUDY_KINDS,
    OTHER_TREATMENTS,
    OUTCOMES,
    RELATEDNESS,
    SERIOUS_CRITERIA,
    SEVERITIES,
    TREATMENT_ALLOWED_KINDS,
    TREATMENT_REQUIRED_KINDS,
    AppAction,
    DispositionKind,
    OtherTreatment,
    Outcome,
    Relatedness,
    SeriousCriterion,
    Severity,
)

# The column of each serious criterion.
SERIOUS_COLUMNS: dict[str, str] = {criterion: f"serious_{criterion}" for criterion in SERIOUS_CRITERIA}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_ANY_CRITERION = " OR ".join(SERIOUS_COLUMNS.values())
_CURRENT_END_OF_STUDY = f"{_in('kind', END_OF_STUDY_KINDS)} AND status = 'current'"


class AdverseEvent(Audited, SQLModel, table=True):
    """An adverse event of one participant, as the site reported it. Carries no arm."""

    __tablename__ = "adverse_event"
    __table_args__ = (
        CheckConstraint(_in("severity", SEVERITIES), name="severity_known"),
        CheckConstraint(_in("relatedness", RELATEDNESS), name="relatedness_known"),
        CheckConstraint(_in("action", APP_ACTIONS), name="action_known"),
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome_known"),
        CheckConstraint(f"serious = ({_ANY_CRITERION})", name="serious_iff_criterion"),
        CheckConstraint("serious_death = (outcome = 'fatal')", name="death_iff_fatal"),
        CheckConstraint("end_date IS NULL OR end_date >= onset_date", name="end_not_before_onset"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    site_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("site.id"), nullable=False))
    participant_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False, index=True)
    )
    term: str = Field(sa_type=String(200))  # verbatim (AETERM)
    onset_date: date = Field(sa_column=Column(Date, nullable=False))
    end_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    serious: bool = Field(sa_column=Column(Boolean, nullable=False))
    serious_death: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    serious_life_threatening: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    serious_hospitalization: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    serious_disability: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    serious_congenital_anomaly: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    serious_other_medically_important: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    severity: str = Field(sa_type=String(12))
    relatedness: str = Field(sa_type=String(16))
    action: str = Field(sa_type=String(24))
    outcome: str = Field(sa_type=String(40))
    safety_event_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("safety_event.id"), nullable=True)
    )
    reported_by: str = Field(sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))

    def criteria(self) -> list[str]:
        """The serious criteria met, in the vocabulary's order."""
        return [c for c, column in SERIOUS_COLUMNS.items() if getattr(self, column)]


class DispositionEvent(Audited, SQLModel, table=True):
    """An end-of-study or intercurrent event of one participant, with its date and reason."""

    __tablename__ = "disposition_event"
    __table_args__ = (
        CheckConstraint(_in("kind", DISPOSITION_KINDS), name="kind_known"),
        CheckConstraint("status IN ('current', 'retracted')", name="status_known"),
        CheckConstraint("(status = 'retracted') = (retracted_at IS NOT NULL)", name="retracted_at_set"),
        CheckConstraint(
            f"other_treatment IS NULL OR {_in('other_treatment', OTHER_TREATMENTS)}",
            name="other_treatment_known",
        ),
        CheckConstraint(
            f"other_treatment IS NOT NULL OR NOT {_in('kind', TREATMENT_REQUIRED_KINDS)}",
            name="other_treatment_required",
        ),
        CheckConstraint(
            f"other_treatment IS NULL OR {_in('kind', TREATMENT_ALLOWED_KINDS)}",
            name="other_treatment_allowed",
        ),
        # One current end of study per participant, whatever path writes it.
        Index(
            "uq_disposition_event_current_end_of_study",
            "participant_id",
            unique=True,
            sqlite_where=text(_CURRENT_END_OF_STUDY),
            postgresql_where=text(_CURRENT_END_OF_STUDY),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    site_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("site.id"), nullable=False))
    participant_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False, index=True)
    )
    kind: str = Field(sa_type=String(32))
    event_date: date = Field(sa_column=Column(Date, nullable=False))
    reason: str = Field(sa_type=Text)
    other_treatment: str | None = Field(default=None, sa_type=String(16), nullable=True)
    status: str = Field(default="current", sa_type=String(10))
    recorded_by: str = Field(sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    retracted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    retracted_by: str | None = Field(default=None, sa_type=String(64), nullable=True)


class EmergencyUnblinding(Audited, SQLModel, table=True):
    """One participant's arm revealed to a clinician in an emergency: who, when and why.

    The arm is deliberately not stored: this row is on the audit trail, which blinded monitors
    read, and the allocation slot already fixes the arm. A clinical emergency does not wait for
    an unlock: the database lock does not apply."""

    __database_lock_exempt__ = True

    __tablename__ = "emergency_unblinding"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    site_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("site.id"), nullable=False))
    participant_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False, index=True)
    )
    reason: str = Field(sa_type=Text)
    unblinded_by: str = Field(sa_type=String(64))
    unblinded_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


# -- request and response bodies ----------------------------------------------------------------


JsonUuid = Annotated[uuid.UUID, Strict(False)]
_STRICT = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


def _text(max_length: int) -> Any:
    return Field(min_length=1, max_length=max_length, schema_extra={"pattern": PLAIN_TEXT})


def _optional_text(max_length: int) -> Any:
    return Field(default=None, min_length=1, max_length=max_length, schema_extra={"pattern": PLAIN_TEXT})


class AdverseEventCreate(SQLModel):
    """An adverse event as the site reports it. `serious_criteria` is required if and only if
    `serious` is true; an ongoing outcome has no end date; death as a criterion goes with a
    fatal outcome."""

    model_config = _STRICT  # type: ignore[assignment]
    term: str = _text(200)
    onset_date: IsoDate
    end_date: IsoDate | None = None
    serious: bool
    serious_criteria: list[SeriousCriterion] = Field(default_factory=list)
    severity: Severity
    relatedness: Relatedness
    action: AppAction
    outcome: Outcome
    safety_event_id: JsonUuid | None = None


class AdverseEventChange(SQLModel):
    """The fields to change (those given; `null` clears an optional one) and why."""

    model_config = _STRICT  # type: ignore[assignment]
    term: str | None = _optional_text(200)
    onset_date: IsoDate | None = None
    end_date: IsoDate | None = None
    serious: bool | None = None
    serious_criteria: list[SeriousCriterion] | None = None
    severity: Severity | None = None
    relatedness: Relatedness | None = None
    action: AppAction | None = None
    outcome: Outcome | None = None
    safety_event_id: JsonUuid | None = None
    change_reason: str = _text(2000)


class AdverseEventRead(SQLModel):
    id: uuid.UUID
    participant_label: str
    site_code: str
    term: str
    onset_date: date
    end_date: date | None
    serious: bool
    serious_criteria: list[str]
    severity: str
    relatedness: str
    action: str
    outcome: str
    safety_event_id: uuid.UUID | None
    reported_by: str
    created_at: datetime


class DispositionCreate(SQLModel):
    """An end-of-study or intercurrent event; `other_treatment` says which treatment was
    started or changed (required for those kinds, optional for a crisis, refused otherwise)."""

    model_config = _STRICT  # type: ignore[assignment]
    kind: DispositionKind
    event_date: IsoDate
    reason: str = _text(2000)
    other_treatment: OtherTreatment | None = None


class DispositionChange(SQLModel):
    """The fields to change (those given) and why."""

    model_config = _STRICT  # type: ignore[assignment]
    kind: DispositionKind | None = None
    event_date: IsoDate | None = None
    reason: str | None = _optional_text(2000)
    other_treatment: OtherTreatment | None = None
    change_reason: str = _text(2000)


class ReasonBody(SQLModel):
    """Why: a retraction's or an emergency unblinding's reason."""

    model_config = _STRICT  # type: ignore[assignment]
    reason: str = _text(2000)


class DispositionEventRead(SQLModel):
    id: uuid.UUID
    participant_label: str
    site_code: str
    kind: str
    category: str  # "end_of_study" or "intercurrent"
    event_date: date
    reason: str
    other_treatment: str | None
    status: str
    recorded_by: str
    created_at: datetime
    retracted_at: datetime | None
    retracted_by: str | None


class EmergencyUnblindingRead(SQLModel):
    """An emergency unblinding as everyone allowed to see the participant sees it: no arm."""

    id: uuid.UUID
    participant_label: str
    site_code: str
    reason: str
    unblinded_by: str
    unblinded_at: datetime


class EmergencyUnblindingResult(EmergencyUnblindingRead):
    """The answer to the clinician who unblinded: the record and the arm, for them only."""

    arm_code: str
    arm_name: str


# Registered first (insert=True): a refused change never reaches the audit mechanism's listener.
@event.listens_for(OrmSession, "before_flush", insert=True)
def _clinical_events_are_never_deleted(session: OrmSession, _context: Any, _instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, AdverseEvent):
            raise Conflict("adverse events cannot be deleted")
        if isinstance(obj, DispositionEvent):
            raise Conflict("disposition events cannot be deleted: retract them with a reason")
        if isinstance(obj, EmergencyUnblinding):
            raise Conflict("emergency unblindings cannot be deleted")
    for obj in session.dirty:
        if isinstance(obj, EmergencyUnblinding) and session.is_modified(obj, include_collections=False):
            raise Conflict("an emergency unblinding cannot be changed")
