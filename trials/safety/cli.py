"""`trials safety escalate` and `trials outbox send`: the scheduled side of safety events.

Both run once by default (for cron or a systemd timer) or keep running with `--watch SECONDS`.
"""

import time
from typing import Any

import click

from trials.core.cli import acting, emit, fail, json_option, with_app

watch_option = click.option(
    "--watch",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    default=None,
    help="Keep running, checking again every SECONDS (stop with Ctrl-C).",
)


@click.group("safety")
def safety() -> None:
    """Safety events: escalation of overdue follow-ups."""


def _escalate_once(codes: tuple[str, ...]) -> list[dict[str, Any]]:
    from sqlmodel import col, select

    from trials.core.accounts.models import Trial
    from trials.core.db import utcnow
    from trials.safety import services

    escalated: list[dict[str, Any]] = []
    with acting(None) as (session, _principal):
        wanted = codes or tuple(session.exec(select(Trial.code).order_by(col(Trial.code))).all())
        now = utcnow()
        for code in wanted:
            for event in services.escalate_overdue(code, session=session, now=now):
                read = services.event_read(event, session=session, now=now)
                escalated.append(
                    {
                        "trial_code": code,
                        "id": str(event.id),
                        "participant_label": read.participant_label,
                        "kind": event.kind,
                        "due_at": event.due_at.isoformat(),
                    }
                )
    return escalated


@safety.command("escalate")
@click.argument("codes", nargs=-1, metavar="[CODE]...")
@watch_option
@json_option
@with_app
def escalate(codes: tuple[str, ...], watch: float | None, as_json: bool) -> None:
    """Escalate open safety events past their follow-up deadline (all trials, or CODE...).

    Each overdue event is escalated once: the trial's sponsors are notified in the app and by
    e-mail through the outbox, and the escalation is in the audit trail.
    """
    while True:
        escalated = _escalate_once(codes)
        emit(
            escalated,
            as_json,
            lambda rows: "\n".join(
                [
                    f"{r['trial_code']} {r['participant_label']}: {r['kind']} overdue since {r['due_at']}"
                    for r in rows
                ]
                + [f"{len(rows)} overdue safety event(s) escalated"]
            ),
        )
        if watch is None:
            return
        time.sleep(watch)


@click.group("outbox")
def outbox() -> None:
    """Queued e-mail (safety notifications and escalations)."""


def _send_pending(settings: Any, smtp_holder: list[Any], skip: set[Any]) -> tuple[int, list[str]]:
    """Send every pending message, one transaction per message: a message is marked sent in
    the transaction that follows its delivery to the SMTP server."""
    from trials.safety import relay

    sent = 0
    errors: list[str] = []
    while True:
        with acting(None) as (session, _principal):
            batch = relay.pending(session=session, limit=1, skip=frozenset(skip))
            if not batch:
                return sent, errors
            if not smtp_holder:
                smtp_holder.append(settings.connect())
            report = relay.send_batch(batch, smtp_holder[0], settings, session=session)
        sent += report.sent
        if report.failed:
            skip.update(m.id for m in batch)
            errors.extend(report.errors)


@outbox.command("send")
@watch_option
@json_option
@with_app
def send(watch: float | None, as_json: bool) -> None:
    """Relay queued e-mail to the SMTP server set by TRIALS_SMTP_HOST and TRIALS_SMTP_PORT
    (TRIALS_SMTP_SECURITY, TRIALS_SMTP_USERNAME, TRIALS_SMTP_PASSWORD, TRIALS_SMTP_SENDER)."""
    import smtplib

    from flask import current_app

    from trials.safety import relay

    try:
        settings = relay.SmtpSettings.from_config(current_app.config)
    except ValueError as exc:
        fail(str(exc))
    while True:
        smtp_holder: list[Any] = []
        try:
            sent, errors = _send_pending(settings, smtp_holder, set())
        except (OSError, smtplib.SMTPException) as exc:
            server = f"{settings.host}:{settings.port}"
            fail(f"the SMTP server {server} failed: {exc}; unsent messages stay queued")
        finally:
            for smtp in smtp_holder:
                try:
                    smtp.quit()
                except (OSError, smtplib.SMTPException):
                    smtp.close()
        emit(
            {"sent": sent, "refused": errors},
            as_json,
            "\n".join([*errors, f"{sent} message(s) sent, {len(errors)} refused (left queued)"]),
        )
        if watch is None:
            if errors:
                raise click.exceptions.Exit(1)
            return
        time.sleep(watch)
