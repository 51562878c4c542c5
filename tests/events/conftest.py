"""A live example trial with site staff, clinicians, two sponsors, a monitor and both
statisticians; randomized participants (from the assessment tests' helpers) and what a refused
request must not change."""

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from tests.assessments.conftest import CODE, CONSENTED, TODAY, h, make_participant
from tests.conftest import set_up_example_trial, site_and_user_makers
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.db import make_engine
from trials.events.models import AdverseEvent, DispositionEvent, EmergencyUnblinding
from trials.randomization.models import AllocationSlot
from trials.safety.models import Notification, OutboxMessage

__all__ = ["h", "make_participant"]

# The example trial's arms: codes and names, none of which may reach a blinded user.
ARM_TEXTS = ("CBT", "ATTN", "WAIT", "MoodStep CBT", "Attention-control app", "Waitlist")


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    """The example protocol locked and live. The protocol blinds the statisticians of the trial
    (the blinded one) and its data managers (monitors); site staff and sponsors see arms."""
    staff = {
        "sponsor": "sam:sponsor:TRIAL",
        "sponsor2": "sid:sponsor:TRIAL",
        "lds": "cora:coordinator:TRIAL:LDS",
        "man": "manny:coordinator:TRIAL:MAN",
        "clin_lds": "cleo:clinician:TRIAL:LDS",
        "clin_man": "max:clinician:TRIAL:MAN",
        "blinded": "bea:statistician_blinded:TRIAL",
        "monitor": "moe:monitor:TRIAL",
        "unblinded": "una:statistician_unblinded:TRIAL",
    }
    return set_up_example_trial(session, make_site, make_user, staff, live_seed=b"\x07" * 32)


def stored(session: Session) -> dict[str, int]:
    """What a refused request must not change."""
    session.expire_all()

    def count(model: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)

    return {
        "adverse_events": count(AdverseEvent),
        "dispositions": count(DispositionEvent),
        "unblindings": count(EmergencyUnblinding),
        "notifications": count(Notification),
        "outbox": count(OutboxMessage),
        "audit": count(AuditEntry),
    }


def no_arm_in(text: str) -> None:
    """No arm code or name in `text` (the trial's code, MOOD-CBT-01, is no arm)."""
    text = text.replace(CODE, "")
    for arm in ARM_TEXTS:
        assert arm not in text, f"{arm!r} in {text}"


def arm_of(session: Session, label: str) -> str:
    from trials.participants.models import Participant

    return str(
        session.scalars(
            select(AllocationSlot.arm_code)
            .join(Participant, col(Participant.id) == col(AllocationSlot.participant_id))
            .where(col(Participant.label) == label)
        ).one()
    )


def committed_trial(url: str, staff: dict[str, str]) -> dict[str, Principal]:
    """On the database at `url`, committed: the example trial live, `staff` (one of them "lds",
    a coordinator at LDS) and one participant randomized today, LDS-0001."""
    from trials.participants import services as participants
    from trials.participants.models import ScreeningCreate
    from trials.randomization import services as randomization

    engine = make_engine(url)
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system())

        make_site, make_user = site_and_user_makers(session)

        people = set_up_example_trial(session, make_site, make_user, staff, live_seed=b"\x09" * 32)
        data = ScreeningCreate.model_validate(
            {
                "site_code": "LDS",
                "screened_on": CONSENTED,
                "age_years": 30,
                "screening_phq9": 12,
                "inclusion_met": True,
                "exclusion_present": False,
            }
        )
        label = participants.screen(CODE, data, session=session, by=people["lds"], today=TODAY).label
        participants.enrol(CODE, label, CONSENTED, session=session, by=people["lds"], today=TODAY)
        randomization.randomize(CODE, label, session=session, by=people["lds"])
        session.commit()
    engine.dispose()
    return people
