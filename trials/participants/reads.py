"""What a participant looks like to a reader, before randomization is considered.

The participants package may not import randomization (dependencies point one way), so this
read carries no arm: `trials.randomization.reads` adds the randomization, for those allowed.
"""

from datetime import datetime

from sqlmodel import Session

from trials.core.accounts.models import Site
from trials.participants.models import Participant, ParticipantRead
from trials.participants.services import reasons_of


def site_code_of(participant: Participant, *, session: Session) -> str:
    site = session.get(Site, participant.site_id)
    if site is None:  # the foreign key makes this impossible
        raise LookupError(f"participant {participant.label} has no site")
    return site.code


def participant_read(
    participant: Participant,
    *,
    session: Session,
    randomized_at: datetime | None = None,
    arm_code: str | None = None,
) -> ParticipantRead:
    """The participant as the API and the CLI show it; randomization fields only when given."""
    return ParticipantRead(
        label=participant.label,
        site_code=site_code_of(participant, session=session),
        status=participant.status,
        screened_on=participant.screened_on,
        eligible=participant.eligible,
        screen_failure_reasons=reasons_of(participant),
        consent_date=participant.consent_date,
        randomized_at=randomized_at,
        arm_code=arm_code,
    )
