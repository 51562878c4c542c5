"""Patterns for text that people read: no control or format characters.

Written with literal ranges (not `\\p{Cc}`) so that the same pattern works in pydantic's regex
engine, Python's `re` and the ECMA-262 dialect of the OpenAPI document. Also: the one type of
every date in a JSON body.
"""

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict
from pydantic_core import PydanticCustomError

# Unicode Cc (C0, DEL, C1) and Cf (soft hyphen, bidi marks and overrides, zero-width and other
# invisible format characters) that could hide or disguise what a person reads. Tab, line feed
# and carriage return (in C0) are kept apart: text typed in a text area may hold them.
_C0_BUT_LINES = "\x00-\x08\x0b\x0c\x0e-\x1f"
_OTHER_INVISIBLE = (
    "\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
_INVISIBLE = "\x00-\x1f" + _OTHER_INVISIBLE

# Visible text: none of the above, and not blank.
PLAIN_TEXT = f"^[^{_INVISIBLE}]*[^{_INVISIBLE}\\s][^{_INVISIBLE}]*$"
# Any text free of the above, possibly empty.
NO_CONTROL = f"^[^{_INVISIBLE}]*$"

_HIDDEN_IN_LINES = re.compile(f"[{_C0_BUT_LINES}{_OTHER_INVISIBLE}]")


def hidden_characters(text: str) -> bool:
    """Whether text holds a control or invisible format character other than tab and line breaks."""
    return _HIDDEN_IN_LINES.search(text) is not None


def _iso_date(value: Any) -> Any:
    """Only a date, or its ISO text YYYY-MM-DD: no timestamp, datetime or number is read as one."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value
    raise PydanticCustomError("date_type", "must be a date written YYYY-MM-DD")


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# A date in a JSON body. SQLModel validates bodies field by field in python mode, where a strict
# date refuses its JSON string: the text is checked to be YYYY-MM-DD, then read as a date.
IsoDate = Annotated[date, Strict(False), BeforeValidator(_iso_date)]
