"""`trials ae ...`, `trials disposition ...`, `trials unblind-participant` and `trials unblindings`.

No output carries an arm, except `unblind-participant`'s to the clinician who unblinds.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from trials.core.cli import acting, as_option, emit, json_option, with_app
from trials.events.terms import (
    APP_ACTIONS,
    DISPOSITION_KINDS,
    OTHER_TREATMENTS,
    OUTCOMES,
    RELATEDNESS,
    SERIOUS_CRITERIA,
    SEVERITIES,
)

date_type = click.DateTime(formats=["%Y-%m-%d"])


def today() -> Any:
    """The date in UTC: no event may be dated later (loaded on use: a light --help)."""
    from trials.core.db import utctoday

    return utctoday()


@contextmanager
def _valid() -> Iterator[None]:
    """Validation errors of a body built from options, as the clean error of a domain refusal."""
    from pydantic import ValidationError

    from trials.core.errors import InvalidInput, field_errors

    try:
        yield
    except ValidationError as exc:
        raise InvalidInput("the input is not valid", errors=field_errors(exc)) from None


def _given(**options: Any) -> dict[str, Any]:
    """The options given on the command line (click passes None, or () for a repeatable one)."""
    return {name: value for name, value in options.items() if value is not None and value != ()}


def _day(value: Any) -> Any:
    return None if value is None else value.date()


def ae_line(d: dict[str, Any]) -> str:
    serious = f"SERIOUS ({', '.join(d['serious_criteria'])}) " if d["serious"] else ""
    end = f" to {d['end_date']}" if d["end_date"] else ""
    return (
        f"{d['id']}  {d['participant_label']:<10} {serious}{d['term']!r}  onset {d['onset_date']}{end}  "
        f"{d['severity']}, {d['relatedness']}, action {d['action']}, outcome {d['outcome']}"
    )


def disposition_line(d: dict[str, Any]) -> str:
    treatment = f" ({d['other_treatment']})" if d["other_treatment"] else ""
    retracted = (
        f"  RETRACTED {d['retracted_at']} by {d['retracted_by']}" if d["status"] == "retracted" else ""
    )
    return (
        f"{d['id']}  {d['participant_label']:<10} {d['event_date']}  {d['kind']}{treatment}: "
        f"{d['reason']}{retracted}"
    )


def unblinding_line(d: dict[str, Any]) -> str:
    return (
        f"{d['participant_label']:<10} unblinded by {d['unblinded_by']} at {d['unblinded_at']}: {d['reason']}"
    )


def _lines(line: Callable[[dict[str, Any]], str], empty: str) -> Callable[[list[dict[str, Any]]], str]:
    return lambda rows: "\n".join(line(r) for r in rows) or empty


# -- adverse events ---------------------------------------------------------------------------------


@click.group("ae")
def ae() -> None:
    """Adverse events: record, change with a reason, list (serious ones first)."""


@ae.command("record")
@click.argument("code")
@click.argument("label")
@click.option("--term", required=True, help="The event as reported (verbatim, at most 200 characters).")
@click.option("--onset", "onset_date", type=date_type, required=True, help="Onset date (YYYY-MM-DD).")
@click.option("--end", "end_date", type=date_type, help="End date (YYYY-MM-DD), if the event has ended.")
@click.option(
    "--serious/--not-serious",
    default=None,
    help="Whether the event is serious (required: no default answer).",
)
@click.option(
    "--criterion",
    "serious_criteria",
    type=click.Choice(SERIOUS_CRITERIA),
    multiple=True,
    help="A serious criterion met (repeat for several); required if and only if serious.",
)
@click.option("--severity", type=click.Choice(SEVERITIES), required=True)
@click.option("--relatedness", type=click.Choice(RELATEDNESS), required=True, help="Relatedness to the app.")
@click.option("--action", type=click.Choice(APP_ACTIONS), required=True, help="Action taken with the app.")
@click.option("--outcome", type=click.Choice(OUTCOMES), required=True)
@click.option(
    "--safety-event", "safety_event_id", help="The id of a safety event of the participant it relates to."
)
@as_option
@json_option
@with_app
def ae_record(
    code: str,
    label: str,
    serious: bool | None,
    as_user: str,
    as_json: bool,
    **options: Any,
) -> None:
    """Record an adverse event of participant LABEL of trial CODE; a serious one notifies the sponsors."""
    if serious is None:
        raise click.UsageError(
            "Missing option: give --serious or --not-serious (seriousness is never assumed)"
        )
    from trials.events import services
    from trials.events.models import AdverseEventCreate

    options["onset_date"] = _day(options["onset_date"])
    options["end_date"] = _day(options["end_date"])
    with acting(as_user) as (session, principal):
        with _valid():
            data = AdverseEventCreate.model_validate(
                {
                    **_given(**options),
                    "serious": serious,
                    "serious_criteria": list(options["serious_criteria"]),
                }
            )
        event = services.record_adverse_event(code, label, data, session=session, by=principal, today=today())
        out = services.adverse_event_read(event, session=session).model_dump(mode="json")
    emit(out, as_json, lambda d: "recorded " + ae_line(d))


@ae.command("change")
@click.argument("code")
@click.argument("event_id", type=click.UUID)
@click.option("--term")
@click.option("--onset", "onset_date", type=date_type, help="Onset date (YYYY-MM-DD).")
@click.option("--end", "end_date", type=date_type, help="End date (YYYY-MM-DD).")
@click.option("--clear-end", is_flag=True, help="Remove the end date.")
@click.option("--serious/--not-serious", default=None)
@click.option(
    "--criterion",
    "serious_criteria",
    type=click.Choice(SERIOUS_CRITERIA),
    multiple=True,
    help="The serious criteria met (repeat for several): replaces the recorded ones.",
)
@click.option("--no-criteria", is_flag=True, help="Remove every serious criterion (with --not-serious).")
@click.option("--severity", type=click.Choice(SEVERITIES))
@click.option("--relatedness", type=click.Choice(RELATEDNESS))
@click.option("--action", type=click.Choice(APP_ACTIONS))
@click.option("--outcome", type=click.Choice(OUTCOMES))
@click.option("--reason", "change_reason", required=True, help="Why (recorded in the audit trail).")
@as_option
@json_option
@with_app
def ae_change(
    code: str,
    event_id: Any,
    clear_end: bool,
    no_criteria: bool,
    as_user: str,
    as_json: bool,
    **options: Any,
) -> None:
    """Change adverse event EVENT_ID of trial CODE with a reason (the audit trail keeps the old values)."""
    if clear_end and options["end_date"] is not None:
        raise click.UsageError("give --end or --clear-end, not both")
    if no_criteria and options["serious_criteria"]:
        raise click.UsageError("give --criterion or --no-criteria, not both")
    from trials.events import services
    from trials.events.models import AdverseEventChange

    options["onset_date"] = _day(options["onset_date"])
    options["end_date"] = _day(options["end_date"])
    body = _given(**options)
    if "serious_criteria" in body:
        body["serious_criteria"] = list(body["serious_criteria"])
    if clear_end:
        body["end_date"] = None
    if no_criteria:
        body["serious_criteria"] = []
    with acting(as_user) as (session, principal):
        with _valid():
            data = AdverseEventChange.model_validate(body)
        event = services.change_adverse_event(
            code, event_id, data, session=session, by=principal, today=today()
        )
        out = services.adverse_event_read(event, session=session).model_dump(mode="json")
    emit(out, as_json, lambda d: "changed " + ae_line(d))


@ae.command("list")
@click.argument("code")
@click.option("--participant", "label", help="Only this participant's events.")
@click.option("--serious/--not-serious", default=None, help="Only serious, or only non-serious, events.")
@as_option
@json_option
@with_app
def ae_list(code: str, label: str | None, serious: bool | None, as_user: str, as_json: bool) -> None:
    """Adverse events of trial CODE, serious ones first (site staff: their site's)."""
    from trials.events import services

    with acting(as_user) as (session, principal):
        rows = services.list_adverse_events(code, session=session, by=principal, label=label, serious=serious)
        out = [r.model_dump(mode="json") for r in services.adverse_event_reads(rows, session=session)]
    emit(out, as_json, _lines(ae_line, "no adverse events"))


# -- disposition and intercurrent events --------------------------------------------------------------


@click.group("disposition")
def disposition() -> None:
    """End of study (withdrawal, lost to follow-up, completed) and intercurrent events."""


@disposition.command("record")
@click.argument("code")
@click.argument("label")
@click.option("--kind", type=click.Choice(DISPOSITION_KINDS), required=True)
@click.option("--date", "event_date", type=date_type, required=True, help="Date of the event (YYYY-MM-DD).")
@click.option("--reason", required=True, help="Why, or what happened (plain text).")
@click.option(
    "--treatment",
    "other_treatment",
    type=click.Choice(OTHER_TREATMENTS),
    help="Which other treatment was started or changed.",
)
@as_option
@json_option
@with_app
def disposition_record(code: str, label: str, as_user: str, as_json: bool, **options: Any) -> None:
    """Record an end-of-study or intercurrent event of participant LABEL of trial CODE."""
    from trials.events import services
    from trials.events.models import DispositionCreate

    options["event_date"] = _day(options["event_date"])
    with acting(as_user) as (session, principal):
        with _valid():
            data = DispositionCreate.model_validate(_given(**options))
        event = services.record_disposition(code, label, data, session=session, by=principal, today=today())
        out = services.disposition_read(event, session=session).model_dump(mode="json")
    emit(out, as_json, lambda d: "recorded " + disposition_line(d))


@disposition.command("change")
@click.argument("code")
@click.argument("event_id", type=click.UUID)
@click.option("--kind", type=click.Choice(DISPOSITION_KINDS))
@click.option("--date", "event_date", type=date_type, help="Date of the event (YYYY-MM-DD).")
@click.option("--event-reason", "reason", help="The event's own reason, corrected.")
@click.option("--treatment", "other_treatment", type=click.Choice(OTHER_TREATMENTS))
@click.option("--clear-treatment", is_flag=True, help="Remove the other treatment.")
@click.option(
    "--reason", "change_reason", required=True, help="Why the change (recorded in the audit trail)."
)
@as_option
@json_option
@with_app
def disposition_change(
    code: str, event_id: Any, clear_treatment: bool, as_user: str, as_json: bool, **options: Any
) -> None:
    """Change disposition event EVENT_ID of trial CODE with a reason."""
    if clear_treatment and options["other_treatment"] is not None:
        raise click.UsageError("give --treatment or --clear-treatment, not both")
    from trials.events import services
    from trials.events.models import DispositionChange

    options["event_date"] = _day(options["event_date"])
    body = _given(**options)
    if clear_treatment:
        body["other_treatment"] = None
    with acting(as_user) as (session, principal):
        with _valid():
            data = DispositionChange.model_validate(body)
        event = services.change_disposition(
            code, event_id, data, session=session, by=principal, today=today()
        )
        out = services.disposition_read(event, session=session).model_dump(mode="json")
    emit(out, as_json, lambda d: "changed " + disposition_line(d))


@disposition.command("retract")
@click.argument("code")
@click.argument("event_id", type=click.UUID)
@click.option("--reason", required=True, help="Why (e.g. found again); recorded in the audit trail.")
@as_option
@json_option
@with_app
def disposition_retract(code: str, event_id: Any, reason: str, as_user: str, as_json: bool) -> None:
    """Retract disposition event EVENT_ID of trial CODE with a reason; it stays on record."""
    from trials.events import services
    from trials.events.models import ReasonBody

    with acting(as_user) as (session, principal):
        with _valid():
            data = ReasonBody.model_validate({"reason": reason})
        event = services.retract_disposition(code, event_id, data, session=session, by=principal)
        out = services.disposition_read(event, session=session).model_dump(mode="json")
    emit(out, as_json, lambda d: "retracted " + disposition_line(d))


@disposition.command("list")
@click.argument("code")
@click.option("--participant", "label", help="Only this participant's events.")
@click.option("--kind", type=click.Choice(DISPOSITION_KINDS), help="Only events of this kind.")
@as_option
@json_option
@with_app
def disposition_list(code: str, label: str | None, kind: str | None, as_user: str, as_json: bool) -> None:
    """Disposition and intercurrent events of trial CODE, by date (site staff: their site's)."""
    from trials.events import services

    with acting(as_user) as (session, principal):
        rows = services.list_dispositions(code, session=session, by=principal, label=label, kind=kind)
        out = [r.model_dump(mode="json") for r in services.disposition_reads(rows, session=session)]
    emit(out, as_json, _lines(disposition_line, "no disposition events"))


# -- emergency unblinding ---------------------------------------------------------------------------


@click.command("unblind-participant")
@click.argument("code")
@click.argument("label")
@click.option("--reason", required=True, help="The clinical emergency (recorded; sent to the sponsors).")
@as_option
@json_option
@with_app
def unblind_participant(code: str, label: str, reason: str, as_user: str, as_json: bool) -> None:
    """Reveal randomized participant LABEL's arm in an emergency (a clinician of their site).

    Recorded with who, when and why, and notified to the sponsors, never with the arm.
    """
    from trials.events import services
    from trials.events.models import EmergencyUnblindingResult, ReasonBody

    with acting(as_user) as (session, principal):
        with _valid():
            data = ReasonBody.model_validate({"reason": reason})
        record, arm = services.unblind(code, label, data, session=session, by=principal)
        read = services.unblinding_read(record, session=session)
        out = EmergencyUnblindingResult(**read.model_dump(), arm_code=arm.code, arm_name=arm.name).model_dump(
            mode="json"
        )
    emit(out, as_json, lambda d: f"{d['participant_label']} is in arm {d['arm_code']} ({d['arm_name']})")


@click.command("unblindings")
@click.argument("code")
@click.option("--participant", "label", help="Only this participant's.")
@as_option
@json_option
@with_app
def unblindings(code: str, label: str | None, as_user: str, as_json: bool) -> None:
    """Emergency unblindings of trial CODE: who, when and why, never the arm."""
    from trials.events import services

    with acting(as_user) as (session, principal):
        rows = services.list_unblindings(code, session=session, by=principal, label=label)
        out = [r.model_dump(mode="json") for r in services.unblinding_reads(rows, session=session)]
    emit(out, as_json, _lines(unblinding_line, "no emergency unblindings"))
