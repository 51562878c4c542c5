"""Web pages of a trial's participants: the list with its screening form, the participant page
with its enrolment form, their identifiers.

Participants are scoped by site exactly as in the API: site staff see their site's, and another
site's participant is answered like a missing one (404). This package may not import the
packages above it (randomization, assessments, safety, ePRO), so what they show of a
participant comes from providers the application factory hands to `init_app`: the reads
that add randomization (the arm only for unblinded roles) and the page's further sections.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import Blueprint, Flask, current_app, flash, g, redirect, render_template, request, url_for
from pydantic import ConfigDict, ValidationError
from sqlmodel import Session, SQLModel, col, select
from wtforms import SelectChoice

from trials.core.accounts.auth import form_checks_csrf, login_required
from trials.core.accounts.models import Site, Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.config import identifier_keys
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.core.errors import Conflict, FieldError, Forbidden, InvalidInput, field_errors
from trials.core.forms import EXPIRED, show_errors
from trials.core.validation import IsoDate
from trials.participants import identifiers, reads, services
from trials.participants.forms import EnrolForm, IdentifiersForm, ScreeningForm
from trials.participants.models import (
    IdentifiersUpdate,
    Participant,
    ParticipantRead,
    ScreeningCreate,
    Status,
)

bp = Blueprint("participants", __name__, template_folder="templates", url_prefix="/trials")

RANDOMIZED = "randomized"
STATUSES = (Status.SCREENED.value, Status.SCREEN_FAILED.value, Status.ENROLLED.value, RANDOMIZED)


@dataclass(frozen=True)
class Section:
    """A part of the participant page contributed by a package above this one: its template is
    included with `context` as `section`."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)


class ReadsProvider(Protocol):
    def __call__(
        self, participants: Sequence[Participant], *, session: Session, by: Principal
    ) -> list[ParticipantRead]: ...


class SectionProvider(Protocol):
    def __call__(self, participant: Participant, *, session: Session, by: Principal) -> Section | None: ...


def _plain_reads(
    participants: Sequence[Participant], *, session: Session, by: Principal
) -> list[ParticipantRead]:
    return [reads.participant_read(p, session=session) for p in participants]


@dataclass(frozen=True)
class Pages:
    reads: ReadsProvider = _plain_reads
    sections: tuple[SectionProvider, ...] = ()


def init_app(app: Flask, *, reads: ReadsProvider, sections: Sequence[SectionProvider] = ()) -> None:
    """Register the blueprint with the providers of what the packages above show."""
    app.extensions["participant_pages"] = Pages(reads=reads, sections=tuple(sections))
    app.register_blueprint(bp)


def _pages() -> Pages:
    pages: Pages = current_app.extensions.get("participant_pages", Pages())
    return pages


def status_of(read: ParticipantRead) -> str:
    """The status shown: randomized once randomized, else the participant's own."""
    return RANDOMIZED if read.randomized_at is not None else read.status


def cipher() -> identifiers.IdentifierCipher:
    return identifiers.IdentifierCipher(identifier_keys(current_app.config))


class EnrolBody(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    consent_date: IsoDate


_INTEGER = re.compile(r"-?[0-9]{1,9}")


def integer_or_text(value: str | None) -> Any:
    """A form's number as an int when it is one; otherwise as sent (None when blank), for the
    validation to refuse by field and rule."""
    text = (value or "").strip()
    if not text:
        return None
    return int(text) if _INTEGER.fullmatch(text) else text


def validated(model: Any, values: dict[str, Any], what: str) -> Any:
    """`model` validated from a form's values; its errors as InvalidInput, by field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(f"the {what} is not valid", errors=field_errors(exc)) from None


def screening_sites(trial: Trial, principal: Principal) -> list[SelectChoice]:
    """(code, name) of the trial's sites where the principal may screen: those of their
    data-entry grants (every site of the locked protocol for a trial-wide grant)."""
    try:
        _version, document = services.locked_protocol(trial, session=db.session)
    except Conflict:
        return []
    if principal.grant_for(Permission.ENTER_DATA, trial_id=trial.id) is None:
        return []
    codes = [s.code for s in document.sites]
    rows = db.session.exec(select(Site).where(col(Site.code).in_(codes))).all()
    by_code = {
        s.code: s
        for s in rows
        if principal.grant_for(Permission.ENTER_DATA, trial_id=trial.id, site_id=s.id) is not None
    }
    return [SelectChoice(code, f"{code} · {by_code[code].name}") for code in codes if code in by_code]


@bp.route("/<code>/participants", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def index(code: str) -> Any:
    principal: Principal = g.principal
    rows = services.list_participants(code, session=db.session, by=principal)
    trial = services.trial_by_code(code, session=db.session)
    sites = screening_sites(trial, principal)
    form = ScreeningForm()
    form.site_code.choices = sites
    errors: list[FieldError] = []
    status = 200
    if request.method == "POST":
        if not sites:  # refused as the API refuses it: 403 without the permission, 409 without a protocol
            authorize(principal, Permission.ENTER_DATA, session=db.session, trial_id=trial.id)
            services.locked_protocol(trial, session=db.session)
            raise Forbidden("you may screen at none of this trial's sites")
        if form.validate_on_submit():
            try:
                data = validated(
                    ScreeningCreate,
                    {
                        "site_code": form.site_code.data or "",
                        "screened_on": (form.screened_on.data or "").strip(),
                        "age_years": integer_or_text(form.age_years.data),
                        "screening_phq9": integer_or_text(form.screening_phq9.data),
                        "inclusion_met": bool(form.inclusion_met.data),
                        "exclusion_present": bool(form.exclusion_present.data),
                    },
                    "screening",
                )
                participant = services.screen(code, data, session=db.session, by=principal, today=today())
            except (InvalidInput, Conflict) as exc:
                errors, status = show_errors(form, exc), exc.status
            else:
                if participant.eligible:
                    flash(f"{participant.label} screened: eligible. Enrol them once they consent.", "success")
                else:
                    why = "; ".join(r["message"] for r in services.reasons_of(participant))
                    flash(f"{participant.label} screened: screen failure ({why}).", "info")
                return redirect(url_for("participants.page", code=code, label=participant.label))
        else:
            errors, status = [EXPIRED], 422
    elif sites:
        form.screened_on.data = today().isoformat()
        if len(sites) == 1:
            form.site_code.data = sites[0].value
    query = (request.args.get("q") or "").strip()
    filter_status = (request.args.get("status") or "").strip()
    if filter_status and filter_status not in STATUSES:
        raise InvalidInput.field(
            "status", "known", f"status: {filter_status!r} is not one of {', '.join(STATUSES)}"
        )
    if query:
        rows = [p for p in rows if query.casefold() in p.label.casefold()]
    listed = _pages().reads(rows, session=db.session, by=principal)
    if filter_status:
        listed = [r for r in listed if status_of(r) == filter_status]
    return render_template(
        "participants/index.html",
        trial=trial,
        rows=listed,
        status_of=status_of,
        statuses=STATUSES,
        query=query,
        status=filter_status,
        arms_shown=any(r.arm_code for r in listed),
        form=form if sites else None,
        form_errors=errors,
        fields_marked=any(f.errors for f in form if f.name != "csrf_token"),
        max_date=today().isoformat(),
    ), status


def _render_page(
    code: str,
    label: str,
    *,
    enrol_form: EnrolForm | None = None,
    errors: Sequence[FieldError] = (),
    status: int = 200,
) -> Any:
    principal: Principal = g.principal
    participant = services.get_participant(code, label, session=db.session, by=principal)
    trial = services.trial_by_code(code, session=db.session)
    pages = _pages()
    read = pages.reads([participant], session=db.session, by=principal)[0]
    identity = None
    identity_error = None
    if identifiers.may_view(principal, participant):
        try:
            identity = identifiers.read_identifiers(
                participant, session=db.session, by=principal, cipher=cipher()
            )
        except Conflict as exc:
            identity_error = exc.detail
    sections = [s for s in (p(participant, session=db.session, by=principal) for p in pages.sections) if s]
    can_enter = (
        principal.grant_for(Permission.ENTER_DATA, trial_id=participant.trial_id, site_id=participant.site_id)
        is not None
    )
    if can_enter and participant.status == Status.SCREENED.value and enrol_form is None:
        enrol_form = EnrolForm(formdata=None)
        enrol_form.consent_date.data = today().isoformat()
    return render_template(
        "participants/page.html",
        trial=trial,
        participant=read,
        status=status_of(read),
        identity=identity,
        identity_error=identity_error,
        identifiers_shown=identifiers.may_view(principal, participant),
        can_enter=can_enter,
        sections=sections,
        enrol_form=enrol_form if can_enter and participant.status == Status.SCREENED.value else None,
        enrol_errors=errors,
        max_date=today().isoformat(),
    ), status


@bp.get("/<code>/participants/<label>")
@login_required
def page(code: str, label: str) -> Any:
    return _render_page(code, label)


@bp.post("/<code>/participants/<label>/enrol")
@login_required
def enrol(code: str, label: str) -> Any:
    """Enrol an eligible participant on their consent date (the API's `enrol`)."""
    principal: Principal = g.principal
    participant = services.get_participant(code, label, session=db.session, by=principal)
    authorize(
        principal,
        Permission.ENTER_DATA,
        session=db.session,
        trial_id=participant.trial_id,
        site_id=participant.site_id,
    )
    form = EnrolForm()
    if not form.validate_on_submit():
        return _render_page(code, label, enrol_form=form, errors=[EXPIRED], status=422)
    try:
        body = validated(EnrolBody, {"consent_date": (form.consent_date.data or "").strip()}, "enrolment")
        services.enrol(code, label, body.consent_date, session=db.session, by=principal, today=today())
    except (InvalidInput, Conflict) as exc:
        errors = show_errors(form, exc)
        return _render_page(code, label, enrol_form=form, errors=errors, status=exc.status)
    flash(f"{label} enrolled (consent {body.consent_date.isoformat()}).", "success")
    return redirect(url_for("participants.page", code=code, label=label))


@bp.route("/<code>/participants/<label>/identifiers", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def edit_identifiers(code: str, label: str) -> Any:
    principal: Principal = g.principal
    participant = services.get_participant(code, label, session=db.session, by=principal)
    key = cipher()
    # Reading them first is the access check: their site's staff only (403 for the others).
    current = identifiers.read_identifiers(participant, session=db.session, by=principal, cipher=key)
    form = IdentifiersForm()
    if request.method == "GET":
        form.full_name.data = current.full_name
        form.email.data = current.email
        form.phone.data = current.phone
    errors: list[FieldError] = []
    status = 200
    if form.validate_on_submit():
        try:
            try:
                data = IdentifiersUpdate.model_validate(
                    {
                        "full_name": (form.full_name.data or "").strip() or None,
                        "email": (form.email.data or "").strip() or None,
                        "phone": (form.phone.data or "").strip() or None,
                        "reason": (form.reason.data or "").strip() or None,
                    }
                )
            except ValidationError as exc:
                raise InvalidInput("the identifiers are not valid", errors=field_errors(exc)) from None
            identifiers.set_identifiers(code, label, data, session=db.session, by=principal, cipher=key)
        except (InvalidInput, Conflict) as exc:
            errors, status = exc.errors or [FieldError("", "refused", exc.detail)], exc.status
            for error in errors:
                target = getattr(form, error.field.split(".")[0], None) if error.field else None
                if target is not None and error.field != "csrf_token":
                    target.errors = [*target.errors, error.message]
        else:
            flash(f"Identifiers of {label} saved (encrypted).", "success")
            return redirect(url_for("participants.page", code=code, label=label))
    elif request.method == "POST":
        errors, status = ([EXPIRED] if "csrf_token" in form.errors else []), 422
    return render_template(
        "participants/identifiers.html",
        trial_code=code,
        label=label,
        form=form,
        errors=[
            e
            for e in errors
            if not e.field or e.field == "csrf_token" or not hasattr(form, e.field.split(".")[0])
        ],
        has_identifiers=current.updated_at is not None,
        configured=key.configured,
    ), status
