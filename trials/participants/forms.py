"""Web forms of the participant pages."""

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, TextAreaField
from wtforms.validators import Length, Optional


class IdentifiersForm(FlaskForm):  # type: ignore[misc]
    """A participant's direct identifiers; every field may stay empty."""

    full_name = StringField(
        "Full name", validators=[Optional(), Length(max=200)], render_kw={"autocomplete": "off"}
    )
    email = EmailField("E-mail", validators=[Optional(), Length(max=254)], render_kw={"autocomplete": "off"})
    phone = StringField("Phone", validators=[Optional(), Length(max=32)], render_kw={"autocomplete": "off"})
    reason = TextAreaField(
        "Reason for the change (required when changing stored identifiers)",
        validators=[Optional(), Length(max=2000)],
        render_kw={"rows": 2},
    )
