"""`trials participants ...`: screen and enrol participants.

`trials participants list`, which shows randomization, is `trials.randomization.cli.list_participants`
(this package may not import randomization).
"""

from typing import Any

import click

from trials.core.cli import acting, as_option, emit, json_option, with_app

date_type = click.DateTime(formats=["%Y-%m-%d"])


def participant_line(data: dict[str, Any]) -> str:
    """One participant (a `ParticipantRead` as JSON) on one line, for people."""
    parts = [f"{data['label']:<10}", f"{data['status']:<13}", f"screened {data['screened_on']}"]
    if data["consent_date"]:
        parts.append(f"consent {data['consent_date']}")
    if data["randomized_at"]:
        parts.append(f"randomized {data['randomized_at']}")
    if data["arm_code"]:
        parts.append(f"arm {data['arm_code']}")
    line = "  ".join(parts)
    for reason in data["screen_failure_reasons"]:
        line += f"\n    screen failure: {reason['message']}"
    return line


def today() -> Any:
    """The date in UTC: screening and consent may not be later (loaded on use: a light --help)."""
    from trials.core.db import utctoday

    return utctoday()


@click.group("participants")
def participants() -> None:
    """Participants: screening, consent, enrolment, and the list with randomization."""


@participants.command("screen")
@click.argument("code")
@click.option("--site", "site_code", required=True, metavar="SITE", help="The screening site's code.")
@click.option("--screened-on", type=date_type, required=True, help="Date of the screening (YYYY-MM-DD).")
@click.option("--age", "age_years", type=int, required=True, help="Age in years.")
@click.option("--phq9", "screening_phq9", type=int, required=True, help="Screening PHQ-9 total (0-27).")
@click.option(
    "--inclusion-met/--inclusion-not-met",
    default=None,
    help="Whether every inclusion criterion is met (required: no default answer).",
)
@click.option(
    "--exclusion-present/--no-exclusion",
    default=None,
    help="Whether any exclusion criterion is present (required: no default answer).",
)
@as_option
@json_option
@with_app
def screen(
    code: str,
    site_code: str,
    screened_on: Any,
    age_years: int,
    screening_phq9: int,
    inclusion_met: bool | None,
    exclusion_present: bool | None,
    as_user: str,
    as_json: bool,
) -> None:
    """Record a screening of trial CODE: eligible, or a screen failure with its reasons."""
    for answer, flags in (
        (inclusion_met, "--inclusion-met or --inclusion-not-met"),
        (exclusion_present, "--exclusion-present or --no-exclusion"),
    ):
        if answer is None:
            raise click.UsageError(f"Missing option: give {flags} (eligibility is never assumed)")
    from pydantic import ValidationError

    from trials.core.errors import InvalidInput, field_errors
    from trials.participants import reads, services
    from trials.participants.models import ScreeningCreate

    with acting(as_user) as (session, principal):
        try:
            data = ScreeningCreate.model_validate(
                {
                    "site_code": site_code,
                    "screened_on": screened_on.date(),
                    "age_years": age_years,
                    "screening_phq9": screening_phq9,
                    "inclusion_met": inclusion_met,
                    "exclusion_present": exclusion_present,
                }
            )
        except ValidationError as exc:
            raise InvalidInput("the screening is not valid", errors=field_errors(exc)) from None
        participant = services.screen(code, data, session=session, by=principal, today=today())
        out = reads.participant_read(participant, session=session).model_dump(mode="json")
    emit(out, as_json, lambda d: ("screened " if d["eligible"] else "screen failure ") + participant_line(d))


@participants.command("enrol")
@click.argument("code")
@click.argument("label")
@click.option("--consent-date", type=date_type, required=True, help="Date of informed consent (YYYY-MM-DD).")
@as_option
@json_option
@with_app
def enrol(code: str, label: str, consent_date: Any, as_user: str, as_json: bool) -> None:
    """Enrol participant LABEL of trial CODE on their consent date."""
    from trials.participants import reads, services

    with acting(as_user) as (session, principal):
        participant = services.enrol(
            code, label, consent_date.date(), session=session, by=principal, today=today()
        )
        out = reads.participant_read(participant, session=session).model_dump(mode="json")
    emit(out, as_json, lambda d: "enrolled " + participant_line(d))
