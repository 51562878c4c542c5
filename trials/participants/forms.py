"""Web forms of the participant pages."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional
from wtforms.widgets import DateInput, NumberInput


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


# The screening and enrolment forms only carry values to the service, which validates them
# (`ScreeningCreate`, `services.screen`, `services.enrol`) and names the field of each error:
# their fields have no validators of their own, so that one place holds the rules.


class ScreeningForm(FlaskForm):  # type: ignore[misc]
    """A screening visit's answers to the protocol's eligibility rules."""

    site_code = SelectField("Site", validate_choice=False)
    screened_on = StringField("Screening date", widget=DateInput())
    age_years = StringField("Age (years)", widget=NumberInput(min=0, max=120))
    screening_phq9 = StringField("Screening PHQ-9 total (0-27)", widget=NumberInput(min=0, max=27))
    inclusion_met = BooleanField("Every inclusion criterion is met")
    exclusion_present = BooleanField("An exclusion criterion is present")


class EnrolForm(FlaskForm):  # type: ignore[misc]
    consent_date = StringField("Date of informed consent", widget=DateInput())
