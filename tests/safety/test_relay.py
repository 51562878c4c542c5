"""The outbox relay against a real SMTP server (aiosmtpd on localhost), and the escalation and
relay commands on a committed database."""

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, col, select

from tests.conftest import (
    query_rows,
    run_cli,
    set_up_example_trial,
    site_and_user_makers,
)
from trials.assessments import services as assessments
from trials.assessments.models import AssessmentCreate
from trials.core.audit import services as audit
from trials.core.db import make_engine, utcnow
from trials.participants import services as participants
from trials.participants.models import ScreeningCreate
from trials.randomization import services as randomization
from trials.safety import relay
from trials.safety.models import OutboxMessage, SafetyEvent

CODE = "MOOD-CBT-01"
REFUSED = "nobody@refused.example"


class Inbox:
    """An aiosmtpd handler keeping what it receives; refuses one address."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address == REFUSED:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def item9_positive(session: Session, people: dict[str, Any], *, overdue: bool) -> SafetyEvent:
    """A randomized participant's PHQ-9 with item 9 = 2: an event, and mail to the clinicians."""
    by = people["lds"]
    today = utcnow().date()
    consented = today - timedelta(days=30)
    screening = ScreeningCreate.model_validate(
        {
            "site_code": "LDS",
            "screened_on": consented,
            "age_years": 30,
            "screening_phq9": 14,
            "inclusion_met": True,
            "exclusion_present": False,
        }
    )
    label = participants.screen(CODE, screening, session=session, by=by, today=today).label
    participants.enrol(CODE, label, consented, session=session, by=by, today=today)
    randomization.randomize(CODE, label, session=session, by=by)
    items = {str(n): 1 for n in range(1, 9)} | {"9": 2}
    data = AssessmentCreate.model_validate({"instrument": "PHQ-9", "assessed_on": today, "items": items})
    _assessment, events = assessments.submit(CODE, label, data, session=session, by=by, today=today)
    (event,) = events
    if overdue:
        with audit.reason(session, "test: the follow-up deadline has passed"):
            event.due_at = utcnow() - timedelta(minutes=5)
            session.add(event)
    session.flush()
    return event


STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "clinician": "cleo:clinician:TRIAL:LDS",
}


def test_the_relay_sends_each_message_once_and_marks_it_sent(
    session: Session, make_site: Any, make_user: Any, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    people = set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)
    event = item9_positive(session, people, overdue=False)
    queued = relay.pending(session=session, limit=100)
    assert [m.safety_event_id for m in queued] == [event.id]
    settings = relay.SmtpSettings(host="127.0.0.1", port=port, sender="trials@example.org")
    with settings.connect() as smtp:
        report = relay.send_batch(queued, smtp, settings, session=session)
    assert (report.sent, report.failed) == (1, 0)
    ((recipients, email),) = inbox.messages
    assert recipients == ["cleo"]  # the site's clinician (no e-mail address: the username)
    assert email["From"] == "trials@example.org"
    assert email["Subject"] == queued[0].subject
    assert email["Message-ID"] == f"<{queued[0].id}@trials.outbox>"
    assert "item 9 = 2" in email.get_content()
    assert queued[0].sent_at is not None
    assert relay.pending(session=session, limit=100) == []


def test_a_refused_recipient_stays_queued(
    session: Session, make_site: Any, make_user: Any, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    people = set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)
    item9_positive(session, people, overdue=False)
    (message,) = relay.pending(session=session, limit=100)
    with audit.reason(session, "test: an address the server refuses"):
        message.to = REFUSED
        session.add(message)
    session.flush()
    settings = relay.SmtpSettings(host="127.0.0.1", port=port)
    with settings.connect() as smtp:
        report = relay.send_batch([message], smtp, settings, session=session)
    assert (report.sent, report.failed) == (0, 1)
    assert REFUSED in report.errors[0]
    assert inbox.messages == []
    assert message.sent_at is None
    assert [m.id for m in relay.pending(session=session, limit=10)] == [message.id]
    assert relay.pending(session=session, limit=10, skip=frozenset({message.id})) == []


def test_settings_come_from_the_configuration() -> None:
    with pytest.raises(ValueError, match="SMTP_HOST"):
        relay.SmtpSettings.from_config({"SMTP_HOST": None})
    with pytest.raises(ValueError, match="SMTP_SECURITY"):
        relay.SmtpSettings.from_config({"SMTP_HOST": "mail", "SMTP_SECURITY": "ssl3"})
    settings = relay.SmtpSettings.from_config({"SMTP_HOST": "mail", "SMTP_PORT": "2525"})
    assert (settings.host, settings.port, settings.security) == ("mail", 2525, "none")


def committed_trial_with_event(url: str, *, overdue: bool) -> str:
    engine = make_engine(url)
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system())

        make_site, make_user = site_and_user_makers(session)

        people = set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)
        event_id = str(item9_positive(session, people, overdue=overdue).id)
        session.commit()
    engine.dispose()
    return event_id


def test_the_commands_escalate_overdue_events_and_relay_the_mail(
    fresh_database_url: str, smtp_server: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database_url
    inbox, port = smtp_server
    event_id = committed_trial_with_event(url, overdue=True)

    result = run_cli(url, "safety", "escalate", "--json")
    assert result.exit_code == 0, result.output
    (escalated,) = json.loads(result.output)
    assert escalated["id"].replace("-", "") == event_id.replace("-", "")
    result = run_cli(url, "safety", "escalate", CODE, "--json")
    assert json.loads(result.output) == []  # once

    result = run_cli(url, "outbox", "send")
    assert result.exit_code == 1
    assert "SMTP_HOST" in result.output

    monkeypatch.setenv("TRIALS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TRIALS_SMTP_PORT", str(port))
    result = run_cli(url, "outbox", "send", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"sent": 2, "refused": []}
    recipients = sorted(r for rcpts, _ in inbox.messages for r in rcpts)
    assert recipients == ["cleo", "sam"]  # the clinician's alert, the sponsor's escalation
    subjects = [email["Subject"] for _, email in inbox.messages]
    assert any(s.startswith(f"[{CODE}] OVERDUE") for s in subjects), subjects
    assert query_rows(url, "SELECT count(*) FROM outbox_message WHERE sent_at IS NULL")[0][0] == 0

    result = run_cli(url, "outbox", "send", "--json")
    assert json.loads(result.output) == {"sent": 0, "refused": []}
    assert len(inbox.messages) == 2
    assert run_cli(url, "audit", "verify").exit_code == 0


def test_an_unreachable_smtp_server_leaves_the_mail_queued(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database_url
    committed_trial_with_event(url, overdue=False)
    monkeypatch.setenv("TRIALS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TRIALS_SMTP_PORT", str(free_port()))  # nothing listens there
    result = run_cli(url, "outbox", "send")
    assert result.exit_code == 1
    assert "failed" in result.output
    assert "stay queued" in result.output
    assert query_rows(url, "SELECT count(*) FROM outbox_message WHERE sent_at IS NULL")[0][0] == 1


def test_sent_messages_are_not_claimed_again(session: Session, make_site: Any, make_user: Any) -> None:
    people = set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)
    item9_positive(session, people, overdue=False)
    (message,) = relay.pending(session=session, limit=5)
    relay.mark_sent(message, session=session)
    assert relay.pending(session=session, limit=5) == []
    still = session.exec(select(OutboxMessage).where(col(OutboxMessage.id) == message.id)).one()
    assert still.sent_at is not None
