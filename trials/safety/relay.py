"""The outbox relay: hands queued e-mails to an SMTP server and records when each was sent.

Messages are written to the outbox in the same transaction as what they announce (a safety
event, an escalation), so nothing is announced that did not happen and nothing that happened
goes unannounced. The relay sends each message and then marks it sent: delivery is at least
once (a crash between the two resends one message), and the Message-ID is the outbox id so
that a receiving server can recognise a resend.
"""

import smtplib
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from sqlmodel import Session, col, select

from trials.core.db import utcnow
from trials.safety.models import OutboxMessage


@dataclass(frozen=True)
class SmtpSettings:
    """Where the relay sends mail. `security` is "none", "starttls" or "tls"."""

    host: str
    port: int = 25
    sender: str = "trials@localhost"
    security: str = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_config(cls, config: Any) -> "SmtpSettings":
        host = config.get("SMTP_HOST")
        if not host:
            raise ValueError(
                "SMTP_HOST is not set: set TRIALS_SMTP_HOST (and TRIALS_SMTP_PORT) to relay e-mail"
            )
        security = str(config.get("SMTP_SECURITY", "none")).lower()
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"SMTP_SECURITY must be none, starttls or tls, not {security!r}")
        return cls(
            host=str(host),
            port=int(config.get("SMTP_PORT", 25)),
            sender=str(config.get("SMTP_SENDER", "trials@localhost")),
            security=security,
            username=config.get("SMTP_USERNAME") or None,
            password=config.get("SMTP_PASSWORD") or None,
        )

    def connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
        if self.username:
            smtp.login(self.username, self.password or "")
        return smtp


def pending(*, session: Session, limit: int, skip: frozenset[uuid.UUID] = frozenset()) -> list[OutboxMessage]:
    """The oldest unsent messages (but those in `skip`), claimed for this relay: on PostgreSQL
    another relay skips them (SKIP LOCKED); SQLite's write transaction admits one relay at a time."""
    query = (
        select(OutboxMessage)
        .where(col(OutboxMessage.sent_at).is_(None), col(OutboxMessage.id).not_in(skip))
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(query).all())


def email_of(message: OutboxMessage, sender: str) -> EmailMessage:
    # Headers up to RFC 5322's 998 characters stay on one line (subjects are at most 200).
    email = EmailMessage(policy=SMTP.clone(max_line_length=998))
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = f"<{message.id}@trials.outbox>"
    email.set_content(message.body)
    return email


def mark_sent(message: OutboxMessage, *, session: Session, now: datetime | None = None) -> None:
    message.sent_at = now or utcnow()
    session.add(message)
    session.flush()


@dataclass(frozen=True)
class RelayReport:
    sent: int
    failed: int
    errors: tuple[str, ...]


def send_batch(
    messages: list[OutboxMessage],
    smtp: smtplib.SMTP,
    settings: SmtpSettings,
    *,
    session: Session,
    on_sent: Callable[[OutboxMessage], None] | None = None,
) -> RelayReport:
    """Send each message and mark it sent; a refused recipient leaves its message queued."""
    sent = 0
    errors: list[str] = []
    for message in messages:
        try:
            smtp.send_message(email_of(message, settings.sender))
        except smtplib.SMTPRecipientsRefused as exc:
            errors.append(f"{message.id}: recipient refused ({message.to}): {exc.recipients}")
            continue
        mark_sent(message, session=session)
        sent += 1
        if on_sent is not None:
            on_sent(message)
    return RelayReport(sent, len(errors), tuple(errors))
