"""What every web form does with a service's refusal: each error beside its field, the rest
above the form, and an expired form said so. Any view may use it."""

import re
from collections.abc import Callable
from typing import Any

from wtforms import Field

from trials.core.errors import Conflict, DomainError, FieldError, InvalidInput

EXPIRED = FieldError("csrf_token", "csrf", "the form has expired: reload the page and send it again")


def show_errors(form: Any, exc: DomainError) -> list[FieldError]:
    """Put each error of `exc` beside its form field (`serious_criteria[0]` beside
    `serious_criteria`); return those of no field of the form, to show above it."""
    general = []
    for error in exc.errors or [FieldError("", "refused", exc.detail)]:
        name = re.split(r"[.\[]", error.field, maxsplit=1)[0] if error.field else ""
        target = getattr(form, name, None) if name and name != "csrf_token" else None
        if isinstance(target, Field):
            # Beside its field the message needs no field name ("age_years: must be ..."); the
            # error summary above the form keeps it.
            message = error.message
            if error.field and message.startswith(f"{error.field}: "):
                message = message[len(error.field) + 2 :]
            target.errors = [*target.errors, message]
        else:
            general.append(error)
    return general


def beside(messages: Any, name: str) -> str:
    """Messages shown beside field `name`, joined, each without a leading "name: " (the field's
    code name belongs in the error summary, not beside the field). A Jinja filter of the app."""
    texts = [m if isinstance(m, str) else getattr(m, "message", str(m)) for m in messages]
    prefix = f"{name}: "
    return " ".join(t[len(prefix) :] if t.startswith(prefix) else t for t in texts)


def form_problems(form: Any, code: str = "invalid") -> list[FieldError]:
    """The errors of a form that failed its own validation, as FieldErrors: an expired or missing
    CSRF token as EXPIRED (shown above the form), the others under their field's name."""
    return [
        EXPIRED if name == "csrf_token" else FieldError(name, code, message)
        for name, messages in form.errors.items()
        for message in (messages[:1] if name == "csrf_token" else messages)
    ]


def submit(form: Any, act: Callable[[], object]) -> tuple[bool, list[FieldError], int]:
    """Validate a posted `form` and, when it is valid, run `act` (the service call).

    Returns (done, errors to show above the form, HTTP status): a refusal (invalid input or a
    conflict) is shown with the form, its field errors beside their fields."""
    if not form.validate_on_submit():
        return False, ([EXPIRED] if "csrf_token" in form.errors else []), 422
    try:
        act()
    except (InvalidInput, Conflict) as exc:
        return False, show_errors(form, exc), exc.status
    return True, [], 200
