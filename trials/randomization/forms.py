"""The randomization web form: an explicit confirmation of an irreversible act."""

from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms.validators import DataRequired


class RandomizeForm(FlaskForm):  # type: ignore[misc]
    confirm = BooleanField(
        "I confirm: this participant has consented, is enrolled and is to be randomized now. "
        "Randomization cannot be undone.",
        validators=[DataRequired(message="confirm: tick to confirm the randomization; nothing was done")],
    )
