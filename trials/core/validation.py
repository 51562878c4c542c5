"""Patterns for text that people read: no control or format characters.

Written with literal ranges (not `\\p{Cc}`) so that the same pattern works in pydantic's regex
engine, Python's `re` and the ECMA-262 dialect of the OpenAPI document.
"""

# Unicode Cc (C0, DEL, C1) and Cf (soft hyphen, bidi marks and overrides, zero-width and other
# invisible format characters) that could hide or disguise what a person reads.
_INVISIBLE = (
    "\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)

# Visible text: none of the above, and not blank.
PLAIN_TEXT = f"^[^{_INVISIBLE}]*[^{_INVISIBLE}\\s][^{_INVISIBLE}]*$"
# Any text free of the above, possibly empty.
NO_CONTROL = f"^[^{_INVISIBLE}]*$"
