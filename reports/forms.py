"""Web forms of the report pages (Flask-WTF: every form carries a CSRF token)."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectChoice, SelectField
from wtforms.validators import DataRequired, Length

from trials.core.signatures.models import Meaning


class GenerateForm(FlaskForm):  # type: ignore[misc]
    variant = SelectField(
        "Report",
        choices=[
            SelectChoice("blinded", "Blinded progress report (pooled data)"),
            SelectChoice("final", "Final report (by arm; after the unblinding)"),
        ],
    )


class SignForm(FlaskForm):  # type: ignore[misc]
    meaning = SelectField(
        "Meaning of your signature",
        choices=[SelectChoice(m.value, m.value.capitalize()) for m in Meaning],
    )
    password = PasswordField(
        "Your password",
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )
    confirm = BooleanField(
        "I have read this report and sign it with the meaning chosen above",
        validators=[DataRequired(message="Tick to confirm what your signature means.")],
    )
