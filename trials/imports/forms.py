"""The import page's form (Flask-WTF: it carries a CSRF token)."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectChoice, SelectField


class ImportForm(FlaskForm):  # type: ignore[misc]
    kind = SelectField(
        "What the file holds",
        choices=[
            SelectChoice("assessments", "Assessments (PHQ-9, PHQ-8, GAD-7 items)"),
            SelectChoice("engagement", "Engagement days (sessions, minutes, modules)"),
        ],
    )
    file = FileField("CSV file (UTF-8)", validators=[FileRequired(message="Choose a CSV file to import.")])
