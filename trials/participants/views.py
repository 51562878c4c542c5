"""Web pages of a trial's participants: the list, the participant page, their identifiers.

Participants are scoped by site exactly as in the API: site staff see their site's, and another
site's participant is answered like a missing one (404). This package may not import the
packages above it (randomization, assessments, safety, ePRO), so what they show of a
participant comes from providers the application factory hands to `init_app`: the reads
that add randomization (the arm only for unblinded roles) and the page's further sections.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import Blueprint, Flask, current_app, flash, g, redirect, render_template, request, url_for
from pydantic import ValidationError
from sqlmodel import Session

from trials.core.accounts.auth import login_required
from trials.core.accounts.permissions import Permission, Principal
from trials.core.config import identifier_keys
from trials.core.db import db
from trials.core.errors import Conflict, FieldError, InvalidInput, field_errors
from trials.participants import identifiers, reads, services
from trials.participants.forms import IdentifiersForm
from trials.participants.models import IdentifiersUpdate, Participant, ParticipantRead, Status

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


@bp.get("/<code>/participants")
@login_required
def index(code: str) -> Any:
    principal: Principal = g.principal
    rows = services.list_participants(code, session=db.session, by=principal)
    trial = services.trial_by_code(code, session=db.session)
    query = (request.args.get("q") or "").strip()
    status = (request.args.get("status") or "").strip()
    if status and status not in STATUSES:
        raise InvalidInput.field("status", "known", f"status: {status!r} is not one of {', '.join(STATUSES)}")
    if query:
        rows = [p for p in rows if query.casefold() in p.label.casefold()]
    listed = _pages().reads(rows, session=db.session, by=principal)
    if status:
        listed = [r for r in listed if status_of(r) == status]
    return render_template(
        "participants/index.html",
        trial=trial,
        rows=listed,
        status_of=status_of,
        statuses=STATUSES,
        query=query,
        status=status,
        arms_shown=any(r.arm_code for r in listed),
    )


@bp.get("/<code>/participants/<label>")
@login_required
def page(code: str, label: str) -> Any:
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
    )


@bp.route("/<code>/participants/<label>/identifiers", methods=["GET", "POST"])
@login_required
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
        status = 422
    return render_template(
        "participants/identifiers.html",
        trial_code=code,
        label=label,
        form=form,
        errors=[e for e in errors if not e.field or not hasattr(form, e.field.split(".")[0])],
        has_identifiers=current.updated_at is not None,
        configured=key.configured,
    ), status
