"""Web forms of the protocol registry."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, PasswordField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class DocumentForm(FlaskForm):  # type: ignore[misc]
    """A protocol document, uploaded as a file or typed into the form."""

    file = FileField("Protocol file (YAML or JSON)", validators=[Optional()])
    text = TextAreaField(
        "…or the document's text",
        validators=[Optional(), Length(max=1_000_000)],
        render_kw={"rows": 24, "spellcheck": "false"},
    )
    reason = TextAreaField(
        "Reason for the change", validators=[Optional(), Length(max=2000)], render_kw={"rows": 2}
    )


class LockForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField(
        "Your password",
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )
    approve = BooleanField(
        "I approve this version; my signature has the meaning “approval”",
        validators=[DataRequired(message="Tick to confirm the meaning of your signature.")],
    )
