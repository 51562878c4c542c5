"""The access matrix: for every route and method of the URL map, who gets what.

Filled in by tests/core/test_access_matrix.py.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    HIDDEN = "hidden"
    SIGN_IN = "sign_in"


ROLES = (
    "admin",
    "sponsor",
    "statistician_blinded",
    "statistician_unblinded",
    "coordinator",
    "clinician",
    "monitor",
)
WEB_PRINCIPALS = ("anonymous", *ROLES)
API_PRINCIPALS = ("anonymous", *ROLES, *(f"{role}:read" for role in ROLES))


@dataclass(frozen=True)
class Row:
    rule: str
    method: str
    allowed: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()
    public: bool = False
    read: frozenset[str] | None = None
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    site_bound: bool = False
    note: str = ""


MATRIX: list[Row] = []
SKIPPED: dict[str, str] = {"static": "the packaged CSS and JavaScript: public files, no records"}


def expected_for(row: Row, principal: str) -> Outcome:
    return Outcome.ALLOWED
