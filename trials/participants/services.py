"""Screening, enrolment and site-scoped access to participants."""

import json
import uuid
from datetime import date

from sqlalchemy import Connection, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from protocols import services as protocols
from protocols.document import ProtocolDocument
from protocols.models import ProtocolVersion
from trials.core.accounts.models import Site, Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.errors import Conflict, InvalidInput, NotFound
from trials.participants.models import Participant, ParticipantCounter, ScreeningCreate, Status


def trial_by_code(code: str, *, session: Session) -> Trial:
    trial = session.exec(select(Trial).where(Trial.code == code)).first()
    if trial is None:
        raise NotFound(f"no trial with code {code!r}")
    return trial


def locked_protocol(trial: Trial, *, session: Session) -> tuple[ProtocolVersion, ProtocolDocument]:
    """The trial's latest locked protocol version: conduct follows it, never a draft."""
    version = session.exec(
        select(ProtocolVersion)
        .where(ProtocolVersion.trial_id == trial.id, ProtocolVersion.status == "locked")
        .order_by(col(ProtocolVersion.version).desc())
    ).first()
    if version is None:
        raise Conflict(f"trial {trial.code} has no locked protocol")
    return version, protocols.document_of(version)


def _site(code: str, document: ProtocolDocument, *, session: Session) -> Site:
    if code not in {s.code for s in document.sites}:
        raise InvalidInput.field(
            "site_code", "trial_site", f"site_code: {code!r} is not a site of this trial"
        )
    site = session.exec(select(Site).where(Site.code == code)).first()
    if site is None:
        raise InvalidInput.field("site_code", "exists", f"site_code: site {code!r} is not set up yet")
    return site


def _not_future(value: date, field: str, today: date) -> None:
    if value > today:
        raise InvalidInput.field(field, "not_future", f"{field}: {value.isoformat()} is in the future")


def eligibility_failures(data: ScreeningCreate, document: ProtocolDocument) -> list[dict[str, str]]:
    """What the screening answers fail of the protocol's eligibility rules (empty: eligible)."""
    rules = document.eligibility
    failures = []
    age = rules.age
    if data.age_years < age.min or (age.max is not None and data.age_years > age.max):
        upper = age.max if age.max is not None else "any age"
        failures.append({"rule": "age", "message": f"age {data.age_years} outside {age.min}-{upper}"})
    phq9 = rules.screening_phq9
    if data.screening_phq9 < phq9.min or (phq9.max is not None and data.screening_phq9 > phq9.max):
        upper_score = phq9.max if phq9.max is not None else 27
        failures.append(
            {
                "rule": "screening_phq9",
                "message": f"screening PHQ-9 {data.screening_phq9} outside {phq9.min}-{upper_score}",
            }
        )
    if not data.inclusion_met:
        failures.append({"rule": "inclusion", "message": "an inclusion criterion is not met"})
    if data.exclusion_present:
        failures.append({"rule": "exclusion", "message": "an exclusion criterion is present"})
    return failures


def _next_label(connection: Connection, trial_id: uuid.UUID, site: Site) -> str:
    table = ParticipantCounter.__table__  # type: ignore[attr-defined]
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    connection.execute(
        dialect_insert(table)
        .values(trial_id=trial_id, site_id=site.id, last_number=0)
        .on_conflict_do_nothing()
    )
    number = connection.execute(
        update(table)
        .where(table.c.trial_id == trial_id, table.c.site_id == site.id)
        .values(last_number=table.c.last_number + 1)
        .returning(table.c.last_number)
    ).scalar_one()
    return f"{site.code}-{number:04d}"


def screen(code: str, data: ScreeningCreate, *, session: Session, by: Principal, today: date) -> Participant:
    """Record a screening: an eligible participant, or a screen failure with its reasons."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.ENTER_DATA, session=session, trial_id=trial.id)
    _version, document = locked_protocol(trial, session=session)
    site = _site(data.site_code, document, session=session)
    authorize(by, Permission.ENTER_DATA, session=session, trial_id=trial.id, site_id=site.id)
    _not_future(data.screened_on, "screened_on", today)
    failures = eligibility_failures(data, document)
    participant = Participant(
        trial_id=trial.id,
        site_id=site.id,
        label=_next_label(session.connection(), trial.id, site),
        status=(Status.SCREEN_FAILED if failures else Status.SCREENED).value,
        screened_on=data.screened_on,
        age_years=data.age_years,
        screening_phq9=data.screening_phq9,
        eligible=not failures,
        screen_failure_reasons=json.dumps(failures) if failures else None,
    )
    session.add(participant)
    session.flush()
    return participant


def visible_site_ids(principal: Principal, trial_id: uuid.UUID) -> frozenset[uuid.UUID] | None:
    """Sites whose participants the principal may see; None for every site of the trial."""
    sites = set()
    for grant in principal.grants:
        if grant.trial_id != trial_id:
            continue
        if grant.site_id is None:
            return None
        sites.add(grant.site_id)
    return frozenset(sites)


def get_participant(code: str, label: str, *, session: Session, by: Principal) -> Participant:
    """A participant the principal may see; another site's participant is refused like a
    missing one, so that its existence does not leak."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    participant = session.exec(
        select(Participant).where(Participant.trial_id == trial.id, Participant.label == label)
    ).first()
    sites = visible_site_ids(by, trial.id)
    if participant is None or (sites is not None and participant.site_id not in sites):
        raise NotFound(f"no participant {label!r} in trial {code}")
    return participant


def list_participants(code: str, *, session: Session, by: Principal) -> list[Participant]:
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    query = select(Participant).where(Participant.trial_id == trial.id)
    sites = visible_site_ids(by, trial.id)
    if sites is not None:
        query = query.where(col(Participant.site_id).in_(sites))
    return list(session.exec(query.order_by(col(Participant.label))).all())


def enrol(
    code: str, label: str, consent_date: date, *, session: Session, by: Principal, today: date
) -> Participant:
    """Enrol an eligible participant on their consent date."""
    participant = get_participant(code, label, session=session, by=by)
    authorize(
        by, Permission.ENTER_DATA, session=session, trial_id=participant.trial_id, site_id=participant.site_id
    )
    if participant.status != Status.SCREENED.value:
        if participant.status == Status.SCREEN_FAILED.value:
            raise Conflict(f"{label} failed screening and cannot be enrolled")
        raise Conflict(f"{label} is already enrolled")
    _not_future(consent_date, "consent_date", today)
    with audit.reason(session, f"enrolled on informed consent dated {consent_date.isoformat()}"):
        participant.consent_date = consent_date
        participant.status = Status.ENROLLED.value
        session.add(participant)
    return participant


def reasons_of(participant: Participant) -> list[dict[str, str]]:
    loaded: list[dict[str, str]] = json.loads(participant.screen_failure_reasons or "[]")
    return loaded
