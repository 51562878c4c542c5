# Expected values: item wording and answer texts from the published forms (PHQ-9: Kroenke,
# Spitzer & Williams 2001; GAD-7: Spitzer et al. 2006; PHQ-8: Kroenke et al. 2009); CDISC
# QSCAT / QSTESTCD from /work/shared/DOMAIN.md section 5 and SDTM controlled terminology
# (see the module docstring of protocols.instruments for what could and could not be confirmed).

import ast
import inspect
import subprocess
import sys
from dataclasses import FrozenInstanceError

import pytest

from analysis.scoring import GAD7, PHQ8, PHQ9, RULES, prorated_total
from protocols import instruments
from protocols.instruments import (
    DIFFICULTY_OPTIONS,
    FREQUENCY_OPTIONS,
    INSTRUMENT_CODES,
    INSTRUMENTS,
    Instrument,
    Item,
    ResponseOption,
    get_instrument,
)

PHQ9_I = INSTRUMENTS["PHQ-9"]
PHQ8_I = INSTRUMENTS["PHQ-8"]
GAD7_I = INSTRUMENTS["GAD-7"]


def test_catalogue_keys():
    assert set(INSTRUMENTS) == {"PHQ-9", "PHQ-8", "GAD-7"}
    assert frozenset({"PHQ-9", "PHQ-8", "GAD-7"}) == INSTRUMENT_CODES
    assert isinstance(INSTRUMENT_CODES, frozenset)
    for code, instrument in INSTRUMENTS.items():
        assert instrument.code == code
        assert get_instrument(code) is instrument


def test_unknown_instrument():
    with pytest.raises(KeyError, match="unknown instrument 'BDI-II'"):
        get_instrument("BDI-II")


def test_scoring_rules_are_the_analysis_rules():
    assert PHQ9_I.scoring_rule is PHQ9
    assert PHQ8_I.scoring_rule is PHQ8
    assert GAD7_I.scoring_rule is GAD7
    for code, instrument in INSTRUMENTS.items():
        assert instrument.scoring_rule is RULES[code]


def test_catalogue_is_frozen():
    with pytest.raises(FrozenInstanceError):
        PHQ9_I.code = "X"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        PHQ9_I.items[0].text = "X"  # type: ignore[misc]


@pytest.mark.parametrize("instrument", list(INSTRUMENTS.values()), ids=list(INSTRUMENTS))
def test_recall_period_and_response_options(instrument):
    assert instrument.recall_period == "the last 2 weeks"
    assert instrument.recall_evlint == "-P2W"
    assert instrument.instructions.startswith("Over the last 2 weeks, how often")
    assert [(o.value, o.text) for o in instrument.response_options] == [
        (0, "Not at all"),
        (1, "Several days"),
        (2, "More than half the days"),
        (3, "Nearly every day"),
    ]
    assert instrument.reference


def test_phq9_items():
    assert [item.number for item in PHQ9_I.items] == list(range(1, 11))
    assert [item.scored for item in PHQ9_I.items] == [True] * 9 + [False]
    assert [item.number for item in PHQ9_I.scored_items] == list(range(1, 10))
    texts = [item.text for item in PHQ9_I.items]
    assert texts[0] == "Little interest or pleasure in doing things"
    assert texts[1] == "Feeling down, depressed, or hopeless"
    assert texts[2] == "Trouble falling or staying asleep, or sleeping too much"
    assert texts[3] == "Feeling tired or having little energy"
    assert texts[4] == "Poor appetite or overeating"
    assert texts[5].startswith("Feeling bad about yourself - or that you are a failure")
    assert texts[6].startswith("Trouble concentrating on things")
    assert texts[7].startswith("Moving or speaking so slowly that other people could have noticed")
    assert texts[8] == ("Thoughts that you would be better off dead or of hurting yourself in some way")
    assert texts[9].startswith("If you checked off any problems, how difficult")
    assert PHQ9_I.item(9).short_name == "self_harm"
    assert PHQ9_I.item(10).short_name == "difficulty"


def test_phq9_difficulty_options():
    assert PHQ9_I.difficulty_options == DIFFICULTY_OPTIONS
    assert [(o.value, o.text) for o in PHQ9_I.difficulty_options] == [
        (0, "Not difficult at all"),
        (1, "Somewhat difficult"),
        (2, "Very difficult"),
        (3, "Extremely difficult"),
    ]
    assert PHQ9_I.option_text(2, item=10) == "Very difficult"
    assert PHQ9_I.option_text(2, item=9) == "More than half the days"
    assert PHQ9_I.option_text(0) == "Not at all"
    assert GAD7_I.difficulty_options == ()
    with pytest.raises(KeyError, match="no answer with value 4"):
        PHQ9_I.option_text(4)


def test_gad7_items():
    assert [item.text for item in GAD7_I.items] == [
        "Feeling nervous, anxious, or on edge",
        "Not being able to stop or control worrying",
        "Worrying too much about different things",
        "Trouble relaxing",
        "Being so restless that it is hard to sit still",
        "Becoming easily annoyed or irritable",
        "Feeling afraid as if something awful might happen",
    ]
    assert all(item.scored for item in GAD7_I.items)


def test_item_lookup():
    assert GAD7_I.item(4).text == "Trouble relaxing"
    with pytest.raises(KeyError, match="GAD-7 has no item 8"):
        GAD7_I.item(8)


def test_phq9_cdisc_codes():
    assert PHQ9_I.cdisc_qscat == "PHQ-9"
    assert [item.cdisc_testcd for item in PHQ9_I.items] == [f"PHQ01{n:02d}" for n in range(1, 11)]
    assert PHQ9_I.item(10).cdisc_testcd == "PHQ0110"
    assert PHQ9_I.cdisc_total_testcd == "PHQ0111"
    assert PHQ9_I.cdisc_total_test_label == "PHQ01-Total Score"
    assert PHQ9_I.item(1).cdisc_test_label == "PHQ01-Little Interest/Pleasure in Things"
    assert PHQ9_I.item(9).cdisc_test_label == "PHQ01-Thoughts You Be Better Off Dead"
    assert PHQ9_I.item(10).cdisc_test_label == "PHQ01-Difficult to Work/Take Care Things"


@pytest.mark.parametrize(
    ("instrument", "codelist"), [("PHQ-9", "PHQ01TC"), ("GAD-7", "GAD02TC")], ids=["PHQ-9", "GAD-7"]
)
def test_catalogue_codes_are_the_controlled_terminology(instrument, codelist):
    """The catalogue's QSTESTCD/QSTEST pairs are exactly the CDISC test-code codelist's terms
    (code and decode), as `reports.submission.terminology` records them with their sources."""
    from reports.submission.terminology import CODELISTS

    entry = INSTRUMENTS[instrument]
    catalogue = {item.cdisc_testcd: item.cdisc_test_label for item in entry.items}
    catalogue[entry.cdisc_total_testcd] = entry.cdisc_total_test_label
    assert catalogue == {t.value: t.decode for t in CODELISTS[codelist].terms}


def test_gad7_cdisc_codes():
    assert GAD7_I.cdisc_qscat == "GAD-7 V2"
    assert [item.cdisc_testcd for item in GAD7_I.items] == [f"GAD02{n:02d}" for n in range(1, 8)]
    assert GAD7_I.cdisc_total_testcd == "GAD0208"
    assert GAD7_I.cdisc_total_test_label == "GAD02-Total Score"
    assert all(item.cdisc_test_label for item in GAD7_I.items)
    assert GAD7_I.item(1).cdisc_test_label == "GAD02-Feeling Nervous Anxious or On Edge"


@pytest.mark.parametrize("instrument", list(INSTRUMENTS.values()), ids=list(INSTRUMENTS))
def test_cdisc_values_fit_sdtm_limits(instrument):
    labels = [item.cdisc_test_label for item in instrument.items]
    labels.append(instrument.cdisc_total_test_label)
    for label in labels:
        if label is not None:
            assert len(label) <= 40
            assert label.isascii()
    codes = [item.cdisc_testcd for item in instrument.items]
    codes.append(instrument.cdisc_total_testcd)
    for code in codes:
        if code is not None:
            assert len(code) <= 8
            assert code.isascii()
            assert code.isupper()
            assert code.isalnum()
    present = [c for c in codes if c is not None]
    assert len(present) == len(set(present))


def test_phq8_cdisc_codes_not_invented():
    # Official PHQ-8 QS codes could not be confirmed: every CDISC field stays None.
    assert PHQ8_I.cdisc_qscat is None
    assert PHQ8_I.cdisc_total_testcd is None
    assert PHQ8_I.cdisc_total_test_label is None
    assert all(item.cdisc_testcd is None for item in PHQ8_I.items)
    assert all(item.cdisc_test_label is None for item in PHQ8_I.items)


def test_no_testcd_shared_between_instruments():
    seen: dict[str, str] = {}
    for instrument in INSTRUMENTS.values():
        for item in instrument.items:
            if item.cdisc_testcd is not None:
                assert item.cdisc_testcd not in seen
                seen[item.cdisc_testcd] = instrument.code


def test_phq8_is_a_separate_instrument():
    assert PHQ8_I is not PHQ9_I
    assert PHQ8_I.name == "Patient Health Questionnaire-8"
    assert [item.number for item in PHQ8_I.items] == list(range(1, 9))
    assert all(item.scored for item in PHQ8_I.items)
    assert PHQ8_I.difficulty_options == ()
    assert PHQ8_I.scoring_rule.max_total == 24
    # Same wording as PHQ-9 items 1-8, but its own Item objects (not PHQ-9's items re-used).
    for phq8_item, phq9_item in zip(PHQ8_I.items, PHQ9_I.items[:8], strict=True):
        assert phq8_item.text == phq9_item.text
        assert phq8_item.short_name == phq9_item.short_name
        assert phq8_item is not phq9_item
    # A PHQ-9 record cannot be scored as a PHQ-8 one.
    with pytest.raises(ValueError, match="PHQ-8 item 9"):
        prorated_total(dict.fromkeys(range(1, 10), 1), PHQ8_I.scoring_rule)


def test_phq8_definition_does_not_reference_phq9():
    tree = ast.parse(inspect.getsource(instruments))
    (assign,) = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "PHQ8_INSTRUMENT" for t in node.targets)
    ]
    names = {n.id for n in ast.walk(assign.value) if isinstance(n, ast.Name)}
    assert not {"PHQ9", "PHQ9_INSTRUMENT", "replace"} & names
    assert "PHQ8" in names


def test_instrument_validates_against_its_rule():
    items = tuple(Item(i, f"item {i}", f"i{i}", None, None) for i in range(1, 8))
    with pytest.raises(ValueError, match="scoring rule is for GAD-7"):
        Instrument(
            code="XYZ-7",
            name="x",
            version="1",
            instructions="x",
            recall_period="the last 2 weeks",
            recall_evlint="-P2W",
            items=items,
            response_options=FREQUENCY_OPTIONS,
            cdisc_qscat=None,
            cdisc_total_testcd=None,
            cdisc_total_test_label=None,
            scoring_rule=GAD7,
            reference="x",
        )
    with pytest.raises(ValueError, match="rule has 7 items, form has 6"):
        Instrument(
            code="GAD-7",
            name="x",
            version="1",
            instructions="x",
            recall_period="the last 2 weeks",
            recall_evlint="-P2W",
            items=items[:6],
            response_options=FREQUENCY_OPTIONS,
            cdisc_qscat=None,
            cdisc_total_testcd=None,
            cdisc_total_test_label=None,
            scoring_rule=GAD7,
            reference="x",
        )


def test_item_rejects_overlong_cdisc_values():
    with pytest.raises(ValueError, match="longer than 8"):
        Item(1, "x", "x", "PHQ010101", None)
    with pytest.raises(ValueError, match="longer than 40"):
        Item(1, "x", "x", "PHQ0101", "X" * 41)


def test_response_option_is_value_and_text():
    assert ResponseOption(1, "Several days") == FREQUENCY_OPTIONS[1]


def test_protocols_package_imports_without_flask():
    code = (
        "import sys; import protocols.instruments; "
        "bad = [m for m in ('flask', 'sqlalchemy', 'sqlmodel') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
