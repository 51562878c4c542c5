"""The assessment web forms. Item responses arrive as text, one radio group per item."""

import re
from typing import Any

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from analysis.scoring import RULES

_INTEGER = re.compile(r"0|-?[1-9][0-9]*")  # "01" is not read as 1


def items_from_form(form: MultiDict[str, str], instrument: str) -> dict[str, Any]:
    """Item number to response as the form sent it, for every item of the instrument.

    An unanswered item (no choice, or the "not answered" choice) is missing (None), never 0;
    an integer is read as one; anything else is passed on as sent, for the service to refuse
    by name and rule."""
    items: dict[str, Any] = {}
    for n in range(1, RULES[instrument].n_items + 1):
        sent = form.getlist(f"item_{n}")
        if len(sent) > 1:
            items[str(n)] = sent
            continue
        text = sent[0].strip() if sent else ""
        if not text:
            items[str(n)] = None
        elif _INTEGER.fullmatch(text):
            items[str(n)] = int(text)
        else:
            items[str(n)] = sent[0]
    return items


class CorrectionForm(FlaskForm):  # type: ignore[misc]
    reason = TextAreaField(
        "Reason for the correction",
        validators=[DataRequired(message="reason: a reason is required for a correction"), Length(max=2000)],
        render_kw={"rows": 2},
    )
