"""Instrument catalogue: PHQ-9, PHQ-8 and GAD-7 metadata and CDISC codes.

Plain frozen dataclasses, importable without Flask or a database. The item wording is the
published English (US) wording of the Pfizer/PHQ Screeners forms (ASCII hyphen for the dash).
Scoring lives in :mod:`analysis.scoring`; each instrument carries its rule.

CDISC SDTM controlled terminology (QS domain)
---------------------------------------------
Sources checked for the codes below (DOMAIN.md section 5 is the project's reference):

- PHQ-9: QSCAT "PHQ-9"; QSTESTCD PHQ0101-PHQ0109 (items), PHQ0110 (difficulty), PHQ0111
  (total). Every QSTEST is the PHQ01TN term of SDTM CT 2021-06-25 (C103705-C103714,
  C113887), as `reports.submission.terminology` lists them with their sources; a test keeps
  the two the same.
- GAD-7: QSCAT "GAD-7 V2"; QSTESTCD GAD0201-GAD0207, total GAD0208; all QSTEST labels as
  used in pharmaverse/admiral's CDISC-based example QS data.
- PHQ-8: CDISC CT has a "Patient Health Questionnaire - 8" test-code codelist (PHQ05TC), but
  its QSCAT, QSTESTCD and QSTEST values could not be confirmed, so every PHQ-8 CDISC field is
  None. Do not invent codes: look them up in the current SDTM CT before any PHQ-8 submission.

QSEVLINT for all three is "-P2W" (recall period: the last 2 weeks).
"""

from dataclasses import dataclass, field

from analysis.scoring import GAD7, PHQ8, PHQ9, ScoringRule

__all__ = [
    "DIFFICULTY_OPTIONS",
    "FREQUENCY_OPTIONS",
    "GAD7_INSTRUMENT",
    "INSTRUMENTS",
    "INSTRUMENT_CODES",
    "PHQ8_INSTRUMENT",
    "PHQ9_INSTRUMENT",
    "Instrument",
    "Item",
    "ResponseOption",
    "get_instrument",
]

_MAX_TESTCD = 8  # SDTM --TESTCD: at most 8 characters
_MAX_LABEL = 40  # SDTM --TEST: at most 40 characters


@dataclass(frozen=True)
class ResponseOption:
    """One answer on the form: the stored value and the printed text (QSORRES)."""

    value: int
    text: str


@dataclass(frozen=True)
class Item:
    """One question of an instrument.

    `number` is 1-based as printed. `scored` is False for items recorded but never summed
    (PHQ-9 item 10). `cdisc_testcd` / `cdisc_test_label` are QSTESTCD / QSTEST, None when not
    confirmed against CDISC controlled terminology.
    """

    number: int
    text: str
    short_name: str
    cdisc_testcd: str | None
    cdisc_test_label: str | None
    scored: bool = True

    def __post_init__(self) -> None:
        if self.number < 1:
            raise ValueError(f"item number must be >= 1, got {self.number}")
        if self.cdisc_testcd is not None and len(self.cdisc_testcd) > _MAX_TESTCD:
            raise ValueError(f"QSTESTCD {self.cdisc_testcd!r} longer than {_MAX_TESTCD}")
        if self.cdisc_test_label is not None and len(self.cdisc_test_label) > _MAX_LABEL:
            raise ValueError(f"QSTEST {self.cdisc_test_label!r} longer than {_MAX_LABEL}")


@dataclass(frozen=True)
class Instrument:
    """A questionnaire: its items, answers, CDISC codes and scoring rule."""

    code: str
    name: str
    version: str
    instructions: str
    recall_period: str
    recall_evlint: str  # QSEVLINT, ISO 8601 duration relative to the assessment
    items: tuple[Item, ...]
    response_options: tuple[ResponseOption, ...]
    cdisc_qscat: str | None
    cdisc_total_testcd: str | None
    cdisc_total_test_label: str | None
    scoring_rule: ScoringRule
    reference: str
    # Options of the unscored "how difficult" item (PHQ-9 item 10); empty when there is none.
    difficulty_options: tuple[ResponseOption, ...] = field(default=())

    def __post_init__(self) -> None:
        numbers = [item.number for item in self.items]
        if numbers != list(range(1, len(self.items) + 1)):
            raise ValueError(f"{self.code}: items must be numbered 1-{len(self.items)}")
        rule = self.scoring_rule
        if rule.code != self.code:
            raise ValueError(f"{self.code}: scoring rule is for {rule.code}")
        if rule.n_items != len(self.items):
            raise ValueError(f"{self.code}: rule has {rule.n_items} items, form has {len(numbers)}")
        if tuple(item.number for item in self.items if item.scored) != rule.scored_items:
            raise ValueError(f"{self.code}: scored items differ from the scoring rule")
        values = [option.value for option in self.response_options]
        if values != list(range(rule.item_min, rule.item_max + 1)):
            raise ValueError(f"{self.code}: response values must run {rule.item_min}-{rule.item_max}")
        if self.cdisc_total_testcd is not None and len(self.cdisc_total_testcd) > _MAX_TESTCD:
            raise ValueError(f"{self.code}: total QSTESTCD longer than {_MAX_TESTCD}")
        if self.cdisc_total_test_label is not None and len(self.cdisc_total_test_label) > _MAX_LABEL:
            raise ValueError(f"{self.code}: total QSTEST longer than {_MAX_LABEL}")

    def item(self, number: int) -> Item:
        """Return item `number` (1-based); KeyError if the instrument has no such item."""
        for item in self.items:
            if item.number == number:
                return item
        raise KeyError(f"{self.code} has no item {number}")

    @property
    def scored_items(self) -> tuple[Item, ...]:
        """The items summed for the total."""
        return tuple(item for item in self.items if item.scored)

    def option_text(self, value: int, *, item: int | None = None) -> str:
        """Return the answer text (QSORRES) for `value`, for `item` if it is unscored."""
        options = self.response_options
        if item is not None and not self.item(item).scored:
            options = self.difficulty_options
        for option in options:
            if option.value == value:
                return option.text
        raise KeyError(f"{self.code}: no answer with value {value!r}")


FREQUENCY_OPTIONS: tuple[ResponseOption, ...] = (
    ResponseOption(0, "Not at all"),
    ResponseOption(1, "Several days"),
    ResponseOption(2, "More than half the days"),
    ResponseOption(3, "Nearly every day"),
)

DIFFICULTY_OPTIONS: tuple[ResponseOption, ...] = (
    ResponseOption(0, "Not difficult at all"),
    ResponseOption(1, "Somewhat difficult"),
    ResponseOption(2, "Very difficult"),
    ResponseOption(3, "Extremely difficult"),
)

_PHQ_INSTRUCTIONS = (
    "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
)
_GAD_INSTRUCTIONS = "Over the last 2 weeks, how often have you been bothered by the following problems?"
_RECALL = "the last 2 weeks"
_EVLINT = "-P2W"

PHQ9_INSTRUMENT = Instrument(
    code="PHQ-9",
    name="Patient Health Questionnaire-9",
    version="1",
    instructions=_PHQ_INSTRUCTIONS,
    recall_period=_RECALL,
    recall_evlint=_EVLINT,
    items=(
        Item(
            1,
            "Little interest or pleasure in doing things",
            "interest",
            "PHQ0101",
            "PHQ01-Little Interest/Pleasure in Things",
        ),
        Item(
            2,
            "Feeling down, depressed, or hopeless",
            "depressed_mood",
            "PHQ0102",
            "PHQ01-Feeling Down Depressed or Hopeless",
        ),
        Item(
            3,
            "Trouble falling or staying asleep, or sleeping too much",
            "sleep",
            "PHQ0103",
            "PHQ01-Trouble Falling or Staying Asleep",
        ),
        Item(
            4,
            "Feeling tired or having little energy",
            "energy",
            "PHQ0104",
            "PHQ01-Feeling Tired or Little Energy",
        ),
        Item(5, "Poor appetite or overeating", "appetite", "PHQ0105", "PHQ01-Poor Appetite or Overeating"),
        Item(
            6,
            "Feeling bad about yourself - or that you are a failure or have let yourself or your family down",
            "self_worth",
            "PHQ0106",
            "PHQ01-Feeling Bad About Yourself",
        ),
        Item(
            7,
            "Trouble concentrating on things, such as reading the newspaper or watching television",
            "concentration",
            "PHQ0107",
            "PHQ01-Trouble Concentrating on Things",
        ),
        Item(
            8,
            "Moving or speaking so slowly that other people could have noticed? Or the "
            "opposite - being so fidgety or restless that you have been moving around a lot "
            "more than usual",
            "psychomotor",
            "PHQ0108",
            "PHQ01-Moving Slowly or Fidgety/Restless",
        ),
        Item(
            9,
            "Thoughts that you would be better off dead or of hurting yourself in some way",
            "self_harm",
            "PHQ0109",
            "PHQ01-Thoughts You Be Better Off Dead",
        ),
        Item(
            10,
            "If you checked off any problems, how difficult have these problems made it for "
            "you to do your work, take care of things at home, or get along with other people?",
            "difficulty",
            "PHQ0110",
            "PHQ01-Difficult to Work/Take Care Things",
            scored=False,
        ),
    ),
    response_options=FREQUENCY_OPTIONS,
    difficulty_options=DIFFICULTY_OPTIONS,
    cdisc_qscat="PHQ-9",
    cdisc_total_testcd="PHQ0111",
    cdisc_total_test_label="PHQ01-Total Score",
    scoring_rule=PHQ9,
    reference=(
        "Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief depression "
        "severity measure. J Gen Intern Med. 2001;16(9):606-613. "
        "doi:10.1046/j.1525-1497.2001.016009606.x"
    ),
)

# PHQ-8: a separate instrument with its own form (Kroenke et al. 2009). Its eight items carry
# the wording of PHQ-9 items 1-8 and are written out here on purpose, not derived from the
# PHQ-9 by dropping item 9. CDISC codes not confirmed (see module docstring): all None.
PHQ8_INSTRUMENT = Instrument(
    code="PHQ-8",
    name="Patient Health Questionnaire-8",
    version="1",
    instructions=_PHQ_INSTRUCTIONS,
    recall_period=_RECALL,
    recall_evlint=_EVLINT,
    items=(
        Item(1, "Little interest or pleasure in doing things", "interest", None, None),
        Item(2, "Feeling down, depressed, or hopeless", "depressed_mood", None, None),
        Item(3, "Trouble falling or staying asleep, or sleeping too much", "sleep", None, None),
        Item(4, "Feeling tired or having little energy", "energy", None, None),
        Item(5, "Poor appetite or overeating", "appetite", None, None),
        Item(
            6,
            "Feeling bad about yourself - or that you are a failure or have let yourself or your family down",
            "self_worth",
            None,
            None,
        ),
        Item(
            7,
            "Trouble concentrating on things, such as reading the newspaper or watching television",
            "concentration",
            None,
            None,
        ),
        Item(
            8,
            "Moving or speaking so slowly that other people could have noticed? Or the "
            "opposite - being so fidgety or restless that you have been moving around a lot "
            "more than usual",
            "psychomotor",
            None,
            None,
        ),
    ),
    response_options=FREQUENCY_OPTIONS,
    cdisc_qscat=None,
    cdisc_total_testcd=None,
    cdisc_total_test_label=None,
    scoring_rule=PHQ8,
    reference=(
        "Kroenke K, Strine TW, Spitzer RL, Williams JBW, Berry JT, Mokdad AH. The PHQ-8 as a "
        "measure of current depression in the general population. J Affect Disord. "
        "2009;114(1-3):163-173. doi:10.1016/j.jad.2008.06.026"
    ),
)

GAD7_INSTRUMENT = Instrument(
    code="GAD-7",
    name="Generalized Anxiety Disorder-7",
    version="2",  # CDISC's QRS implementation is "GAD-7 V2"
    instructions=_GAD_INSTRUCTIONS,
    recall_period=_RECALL,
    recall_evlint=_EVLINT,
    items=(
        Item(
            1,
            "Feeling nervous, anxious, or on edge",
            "nervous",
            "GAD0201",
            "GAD02-Feeling Nervous Anxious or On Edge",
        ),
        Item(
            2,
            "Not being able to stop or control worrying",
            "uncontrollable_worry",
            "GAD0202",
            "GAD02-Not Able to Stop/Control Worrying",
        ),
        Item(
            3,
            "Worrying too much about different things",
            "excessive_worry",
            "GAD0203",
            "GAD02-Worrying Too Much About Things",
        ),
        Item(4, "Trouble relaxing", "trouble_relaxing", "GAD0204", "GAD02-Trouble Relaxing"),
        Item(
            5,
            "Being so restless that it is hard to sit still",
            "restless",
            "GAD0205",
            "GAD02-Being Restless Hard to Sit Still",
        ),
        Item(
            6,
            "Becoming easily annoyed or irritable",
            "irritable",
            "GAD0206",
            "GAD02-Becoming Easily Annoyed/Irritable",
        ),
        Item(
            7,
            "Feeling afraid as if something awful might happen",
            "afraid",
            "GAD0207",
            "GAD02-Feel Afraid/Something Awful Happen",
        ),
    ),
    response_options=FREQUENCY_OPTIONS,
    cdisc_qscat="GAD-7 V2",
    cdisc_total_testcd="GAD0208",
    cdisc_total_test_label="GAD02-Total Score",
    scoring_rule=GAD7,
    reference=(
        "Spitzer RL, Kroenke K, Williams JBW, Loewe B. A brief measure for assessing "
        "generalized anxiety disorder: the GAD-7. Arch Intern Med. 2006;166(10):1092-1097. "
        "doi:10.1001/archinte.166.10.1092"
    ),
)

INSTRUMENTS: dict[str, Instrument] = {
    instrument.code: instrument for instrument in (PHQ9_INSTRUMENT, PHQ8_INSTRUMENT, GAD7_INSTRUMENT)
}

INSTRUMENT_CODES: frozenset[str] = frozenset(INSTRUMENTS)


def get_instrument(code: str) -> Instrument:
    """Return the instrument with `code` ("PHQ-9", "PHQ-8", "GAD-7"); KeyError otherwise."""
    try:
        return INSTRUMENTS[code]
    except KeyError:
        known = ", ".join(sorted(INSTRUMENT_CODES))
        raise KeyError(f"unknown instrument {code!r} (known: {known})") from None
