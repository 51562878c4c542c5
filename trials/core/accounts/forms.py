"""Web forms (Flask-WTF: every form carries a CSRF token)."""

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange


class SignInForm(FlaskForm):  # type: ignore[misc]
    username = StringField(
        "Username",
        validators=[DataRequired(), Length(max=64)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )


class TokenForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])
    scope = SelectField(
        "Scope",
        choices=[SelectChoice("read", "Read only"), SelectChoice("write", "Read and write")],
    )
    expires_in_days = IntegerField(
        "Expires in (days)", default=90, validators=[DataRequired(), NumberRange(1, 365)]
    )


class EmptyForm(FlaskForm):  # type: ignore[misc]
    """A form with only the CSRF token, for buttons that change something."""
