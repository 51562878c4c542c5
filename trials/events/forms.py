"""Web forms of adverse events and of disposition and intercurrent events.

They only carry values to the services, which validate them (`AdverseEventCreate`,
`DispositionCreate`, `services.record_*`) and name the field of each error: the fields have no
validators of their own, so that the rules live in one place.
"""

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.widgets import CheckboxInput, DateInput, ListWidget

from trials.events.terms import (
    APP_ACTIONS,
    DISPOSITION_KINDS,
    KIND_TEXT,
    OTHER_TREATMENTS,
    OUTCOMES,
    RELATEDNESS,
    SERIOUS_CRITERIA,
    SEVERITIES,
)


def _choices(values: tuple[str, ...], texts: dict[str, str] | None = None) -> list[SelectChoice]:
    return [SelectChoice(v, (texts or {}).get(v, v.replace("_", " "))) for v in values]


_PICK = [SelectChoice("", "choose…")]
ACTION_TEXT = {
    "none": "none (app use unchanged)",
    "app_use_interrupted": "app use interrupted",
    "app_withdrawn": "app withdrawn",
    "not_applicable": "not applicable",
}
OUTCOME_TEXT = {
    "recovered_resolved": "recovered / resolved",
    "recovering_resolving": "recovering / resolving",
    "not_recovered_not_resolved": "not recovered / not resolved",
    "recovered_resolved_with_sequelae": "recovered / resolved with sequelae",
}


class AdverseEventForm(FlaskForm):  # type: ignore[misc]
    term = StringField("Adverse event (verbatim term)", render_kw={"maxlength": 200, "autocomplete": "off"})
    onset_date = StringField("Onset date", widget=DateInput())
    end_date = StringField("End date (empty while ongoing)", widget=DateInput())
    serious = BooleanField("Serious adverse event")
    serious_criteria = SelectMultipleField(
        "Serious because",
        choices=_choices(SERIOUS_CRITERIA),
        validate_choice=False,
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    severity = SelectField("Severity", choices=_PICK + _choices(SEVERITIES), validate_choice=False)
    relatedness = SelectField(
        "Relatedness to the app", choices=_PICK + _choices(RELATEDNESS), validate_choice=False
    )
    action = SelectField(
        "Action taken with the app", choices=_PICK + _choices(APP_ACTIONS, ACTION_TEXT), validate_choice=False
    )
    outcome = SelectField("Outcome", choices=_PICK + _choices(OUTCOMES, OUTCOME_TEXT), validate_choice=False)
    # The participant's safety events, set per request by the view; the service checks the choice.
    safety_event_id = SelectField("Arising from a safety event", choices=[], validate_choice=False)


class DispositionForm(FlaskForm):  # type: ignore[misc]
    kind = SelectField(
        "Event", choices=_PICK + _choices(DISPOSITION_KINDS, dict(KIND_TEXT)), validate_choice=False
    )
    event_date = StringField("Date of the event", widget=DateInput())
    reason = TextAreaField("Reason", render_kw={"rows": 3, "maxlength": 2000})
    other_treatment = SelectField(
        "Other treatment (required for a started or changed treatment; optional for a crisis)",
        choices=[SelectChoice("", "none"), *_choices(OTHER_TREATMENTS)],
        validate_choice=False,
    )
