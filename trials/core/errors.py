"""Typed domain errors and field errors. Free of Flask: any package may raise them.

`trials.core.error_handlers` translates them, once, into problem+json or an HTML page.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One rule broken by one field.

    `field` is the path, with dots for keys and brackets for list positions
    (`arms[1].allocation_ratio`), or "" for the input as a whole; `rule` is a short machine code;
    `message` a sentence for people that names the field and the rule.
    """

    field: str
    rule: str
    message: str


def format_path(loc: Iterable[int | str]) -> str:
    """Render a pydantic `loc` as `a.b[2].c` (dict-key markers `[key]` are dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


# Plain words for pydantic's commonest refusals (its own wording, "Input should be a valid
# integer, unable to parse string as an integer", is for programmers); the rule keeps its type.
_PLAIN: dict[str, str] = {
    "missing": "is required",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "date_parsing": "must be a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_too_long": "must be at most {max_length} characters",
    "string_too_short": "must be at least {min_length} characters",
}


def _plain(err: Any) -> str:
    template = _PLAIN.get(err["type"])
    if template is None:
        return str(err["msg"])
    try:
        return template.format(**err.get("ctx", {}))
    except (KeyError, IndexError):
        return str(err["msg"])


def field_errors(exc: Any, *, whole: str = "body") -> list[FieldError]:
    """Field errors from a pydantic `ValidationError`; `whole` names the input when the path is empty."""
    errors = []
    for err in exc.errors(include_url=False):
        path = format_path(err["loc"])
        errors.append(FieldError(path, err["type"], f"{path or whole}: {_plain(err)}"))
    return errors


class DomainError(Exception):
    """Base of the errors services raise; each carries the HTTP status it maps to."""

    status = 400
    title = "Bad request"

    def __init__(
        self, detail: str, *, errors: list[FieldError] | None = None, keep_changes: bool = False
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])
        # True when the refusal itself was put on record (an audited failed attempt): the
        # request or command commits what was flushed before the error instead of rolling
        # back. A service raising it makes no other change first.
        self.keep_changes = keep_changes


class InvalidInput(DomainError):
    status = 422
    title = "Invalid input"

    @classmethod
    def field(cls, field: str, rule: str, message: str) -> "InvalidInput":
        return cls(message, errors=[FieldError(field, rule, message)])


class Unauthorized(DomainError):
    status = 401
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
