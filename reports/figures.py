"""The evidence report's figures as SVG text: vector drawings whose text stays text.

Each function takes plain Python values (the typed dictionaries below, as read from the
analysis-results document and the report context) and returns the SVG of one figure, from its
``<svg`` element on, ready to be inlined in the report's HTML. The figures are drawn with
matplotlib's object API (``matplotlib.figure.Figure``, never pyplot) and share these rules:

- text is written as SVG text in DejaVu Sans (``svg.fonttype = "none"``), so that it is
  searchable in the PDF, laid out with the font's metrics and asking for the report's embedded
  face of it first (:data:`SVG_FONT_FAMILY`); no text is smaller than 9 pt at the figure's
  size, and no figure is wider than 6.9 in (US Letter less the report's margins);
- the same input gives the same bytes (no date, creator or random identifiers in the SVG);
- colours are the Okabe-Ito palette, safe for colour-blind readers; arms also differ by line
  style and marker so that they stay apart in grey;
- the style of every element is written as presentation attributes, not ``style`` attributes,
  so that the SVG can be inlined in HTML rendered by WeasyPrint without warnings;
- nothing is drawn that the input does not hold: a missing estimate is shown as "not
  estimable"; an empty or inconsistent input raises :class:`ValueError` naming the argument.

matplotlib is imported inside the functions: importing this module costs nothing.
"""

import bisect
import hashlib
import io
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "AtRisk",
    "AtRiskRow",
    "AttritionSeries",
    "CompletenessRow",
    "ConsortArm",
    "ConsortFlow",
    "ConsortPooled",
    "EnrolmentSeries",
    "ForestRow",
    "KmCensored",
    "KmCurve",
    "KmSeries",
    "LsMeanPoint",
    "LsMeanSeries",
    "StepCurve",
    "attrition_chart",
    "completeness_chart",
    "consort_diagram",
    "enrolment_chart",
    "forest_plot",
    "km_plot",
    "lsmeans_by_visit",
]

#: Widest figure: US Letter (8.5 in) less the report's margins.
MAX_WIDTH_IN = 6.9
#: Size of all text, in points (the smallest the report allows in figures).
FONT_SIZE = 9.0
FONT_FAMILY = "DejaVu Sans"
#: The name under which the report's stylesheet embeds matplotlib's DejaVu Sans files
#: (reports/static/report.css). The SVG asks for it first: under its own name DejaVu Sans
#: would be the system's copy, found by fontconfig, rather than the packaged one.
REPORT_FONT_FACE = "Report Sans"
#: The SVG text's font family: the report's face, else DejaVu Sans (outside the report).
SVG_FONT_FAMILY = f"{REPORT_FONT_FACE}, {FONT_FAMILY}, sans-serif"
#: Okabe-Ito colours, in the order arms get them (black is kept for totals and references).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
INK = "#000000"
GREY = "#777777"

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "trials-evidence-report",
    "font.family": FONT_FAMILY,
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE,
    "ytick.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE,
    "legend.title_fontsize": FONT_SIZE,
    "figure.titlesize": FONT_SIZE,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.4,
    "axes.unicode_minus": False,
    "axes.formatter.use_mathtext": False,
}
# matplotlib reads the SVG settings from its global rcParams; the lock keeps two renders in
# different threads from changing them under each other.
_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


class ConsortArm(TypedDict):
    """One arm's column of the CONSORT diagram (the ``CONSORT.<stage>.<arm>`` records).

    ``discontinued_reasons`` lists ``[text, n]`` pairs (the kinds of withdrawal).
    """

    label: str
    allocated: int
    received: int
    not_received: int
    lost: int
    discontinued: int
    discontinued_reasons: Sequence[Sequence[Any]]
    analysed: int
    excluded_from_analysis: int


class ConsortPooled(TypedDict):
    """Follow-up and analysis over all arms (the blinded diagram); ``analysed`` may be None."""

    lost: int
    discontinued: int
    analysed: int | None
    discontinued_reasons: NotRequired[Sequence[Sequence[Any]]]


class ConsortFlow(TypedDict):
    """The CONSORT 2010 flow.

    ``screened``, ``excluded``, ``not_eligible`` and ``declined`` are None without a screening
    log. ``reasons`` lists ``[text, n]`` pairs of the failed eligibility rules (one person may
    fail several). ``declined`` counts eligible people not randomized (declined or other
    reasons). ``arms`` has 2 to 4 arms, or is empty for the blinded diagram, which then draws
    ``pooled``.
    """

    screened: int | None
    excluded: int | None
    not_eligible: int | None
    reasons: Sequence[Sequence[Any]]
    declined: int | None
    randomized: int
    arms: Sequence[ConsortArm]
    pooled: ConsortPooled | None


class KmCensored(TypedDict):
    """Censoring times and the number censored at each."""

    time: Sequence[float]
    count: Sequence[int]


class KmCurve(TypedDict):
    """A Kaplan-Meier record's ``statistics["curve"]``: the step function from time 0.

    ``survival[i]`` holds from ``time[i]`` until the next time; a limit is None where it is
    undefined (survival 1 or 0).
    """

    time: Sequence[float]
    survival: Sequence[float]
    ci_low: Sequence[float | None]
    ci_high: Sequence[float | None]
    censored: KmCensored


class KmSeries(KmCurve):
    """A curve with its arm label: ``{"label": ..., **record.statistics["curve"]}``."""

    label: str


class AtRiskRow(TypedDict):
    """One row of the number-at-risk table: a label and one count per time."""

    label: str
    counts: Sequence[int]


class AtRisk(TypedDict):
    """Numbers at risk at ``times`` (a Kaplan-Meier record's ``statistics["at_risk"]``)."""

    times: Sequence[float]
    rows: Sequence[AtRiskRow]


class ForestRow(TypedDict):
    """One estimate of a forest plot; ``estimate`` None means not estimable."""

    label: str
    group: NotRequired[str | None]
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n: NotRequired[int | None]


class LsMeanPoint(TypedDict):
    """An LS mean at one visit; ``estimate`` None means not estimable (nothing drawn)."""

    visit: str
    day: float
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


class LsMeanSeries(TypedDict):
    """The LS means of one arm, by visit."""

    label: str
    points: Sequence[LsMeanPoint]


class StepCurve(TypedDict):
    """A proportion over study day as a step function: ``proportion[i]`` holds from ``time[i]``.

    The curve ends at its last point: to draw a final flat step, repeat the last proportion
    at the last day observed.
    """

    time: Sequence[float]
    proportion: Sequence[float]


class AttritionSeries(TypedDict):
    """One app arm: the proportion still using the app and the proportion still in the trial."""

    label: str
    using: StepCurve
    in_trial: StepCurve


class EnrolmentSeries(TypedDict):
    """One site: participants randomized on each date (ISO text or ``datetime.date``)."""

    label: str
    dates: Sequence[str | date]
    randomized: Sequence[int]


class CompletenessRow(TypedDict):
    """Participants with an analysed value at a visit, of all in the population.

    ``group`` (e.g. the questionnaire) draws one bar per group and visit.
    """

    visit: str
    observed: int
    total: int
    group: NotRequired[str]


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _nonempty(value: Sequence[Any] | None, name: str) -> None:
    if value is None or len(value) == 0:
        raise ValueError(f"{name} is empty: there is nothing to draw")


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a count (a non-negative integer), not {value!r}")
    return value


def _maybe_count(value: Any, name: str) -> int | None:
    return None if value is None else _count(value, name)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def _maybe_number(value: Any, name: str) -> float | None:
    """A finite number, or None for None or a non-finite float (JSON's null)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return _number(value, name)


def _limit(value: Any, name: str) -> float:
    """A confidence limit: None (undefined) becomes NaN."""
    got = _maybe_number(value, name)
    return math.nan if got is None else got


def _same_length(a: Sequence[Any], b: Sequence[Any], name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_b} has {len(b)} values for the {len(a)} of {name_a}")


def _ascending(values: Sequence[float], name: str, *, strict: bool = False) -> None:
    for a, b in zip(values, values[1:], strict=False):
        if b < a or (strict and b == a):
            raise ValueError(f"{name} must be in {'strictly ' if strict else ''}ascending order")


def _pairs(value: Sequence[Sequence[Any]] | None, name: str) -> list[tuple[str, int]]:
    out = []
    for i, pair in enumerate(value or ()):
        if len(pair) != 2 or not isinstance(pair[0], str):
            raise ValueError(f"{name}[{i}] must be a [text, n] pair, not {pair!r}")
        out.append((pair[0], _count(pair[1], f"{name}[{i}]")))
    return out


def _escape(text: str) -> str:
    """Text shown as written (a dollar sign would otherwise start matplotlib's mathtext)."""
    return text.replace("$", r"\$")


def _n(value: int | None) -> str:
    return "(n = not available)" if value is None else f"(n = {value})"


# --------------------------------------------------------------------------------------------
# Drawing and SVG output
# --------------------------------------------------------------------------------------------


@contextmanager
def _drawing() -> Iterator[None]:
    import matplotlib

    with _LOCK, matplotlib.rc_context(cast("Any", _RC)):
        yield


def _figure(width: float, height: float, *, constrained: bool = True) -> "Figure":
    from matplotlib.figure import Figure

    if width > MAX_WIDTH_IN + 1e-9:
        raise ValueError(f"a figure may be at most {MAX_WIDTH_IN} in wide")
    return Figure(figsize=(width, height), layout="constrained" if constrained else None)


_TAG = re.compile(r"<[^<>]+>")
_ATTRIBUTE = re.compile(r'\s([A-Za-z_:][-\w:.]*)="([^"]*)"')
_STYLE_ELEMENT = re.compile(r'\s*<style type="text/css">(.*?)</style>', re.S)


def _declarations(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(";"):
        name, sep, value = part.partition(":")
        if sep and name.strip():
            value = value.strip()
            if name.strip() == "font-family":
                value = SVG_FONT_FAMILY  # matplotlib writes FONT_FAMILY, which every figure sets
            out.append((name.strip(), value))
    return out


#: Element ids our figures set (``gid``) and keep; matplotlib's other ids are dropped unless
#: something refers to them.
_OWN_ID = re.compile(r"^km-")


def _rewrite_tag(tag: str, referenced: set[str], prefix: str) -> str:
    """One start tag: ``style`` declarations as presentation attributes, ids made unique.

    Ids that nothing refers to (and that are not ours) are dropped: WeasyPrint makes an anchor
    of every id of an inlined SVG, and matplotlib numbers its ids the same way in every figure.
    The others, and the references to them, get the figure's `prefix`.
    """
    match = re.match(r"<([^\s/>]+)", tag)
    if match is None or ("style=" not in tag and "id=" not in tag and "#" not in tag):
        return tag
    attributes = dict(_ATTRIBUTE.findall(tag))
    if "style" in attributes:
        attributes.update(_declarations(attributes.pop("style")))
    out = {}
    for name, value in attributes.items():
        if name == "id":
            if value not in referenced and not _OWN_ID.match(value):
                continue
            value = f"{prefix}-{value}"
        elif name.endswith("href") and value.startswith("#"):
            value = f"#{prefix}-{value[1:]}"
        else:
            value = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", value)
        out[name] = value
    end = "/>" if tag.endswith("/>") else ">"
    body = "".join(f' {k}="{v}"' for k, v in out.items())
    return f"<{match.group(1)}{body}{end}"


def _svg(fig: "Figure") -> str:
    """The figure as SVG text from ``<svg`` on: no ``style`` attribute or element, unique ids.

    The ids that remain are prefixed with a digest of the figure's text, so that figures
    inlined in one HTML document do not share an id (the same figure gives the same bytes).
    """
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    inherited = ""
    style = _STYLE_ELEMENT.search(text)
    if style is not None:
        # matplotlib's only rule, "*{stroke-linejoin: round; stroke-linecap: butt}", becomes
        # inherited attributes of the root element.
        rule = re.fullmatch(r"\*\{([^{}]*)\}", style.group(1).strip())
        if rule is None:
            raise RuntimeError(f"unexpected style sheet in matplotlib's SVG: {style.group(1)!r}")
        inherited = "".join(f' {k}="{v}"' for k, v in _declarations(rule.group(1)))
        text = text[: style.start()] + text[style.end() :]
    text = re.sub(r"\s*<defs>\s*</defs>", "", text)
    referenced = set(re.findall(r'url\(#([^)"]+)\)', text)) | set(re.findall(r'href="#([^"]+)"', text))
    prefix = "fig" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    text = _TAG.sub(lambda m: _rewrite_tag(m.group(0), referenced, prefix), text)
    return text.replace("<svg ", f"<svg{inherited} ", 1)


def _text_width(text: str, *, bold: bool = False, size: float = FONT_SIZE) -> float:
    """Width in points of `text` set in DejaVu Sans."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(family=FONT_FAMILY, size=size, weight="bold" if bold else "normal")
    width, _, _ = TextToPath().get_text_width_height_descent(text, prop, ismath=False)
    return float(width)


def _wrap(chunks: Sequence[str], width: float, *, rest: float | None = None, bold: bool = False) -> list[str]:
    """Greedy line breaking of `chunks` to `width` points (`rest` for the lines after the first).

    A chunk starting "(n = " is kept whole; others break at spaces. A word wider than its line
    is put on a line of its own (it then overflows); the figures' widths are chosen so that
    this does not happen with ordinary text.
    """
    words: list[str] = []
    for chunk in chunks:
        words.extend([chunk] if chunk.startswith("(n = ") else chunk.split())
    lines: list[str] = []
    for word in words:
        # the line being filled is lines[-1]: the first, or one after it
        limit = width if len(lines) <= 1 or rest is None else rest
        if lines and _text_width(f"{lines[-1]} {word}", bold=bold) <= limit:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _style(i: int) -> dict[str, Any]:
    """Colour, line style and marker of the i-th series."""
    return {
        "color": PALETTE[i % len(PALETTE)],
        "linestyle": LINE_STYLES[i % len(LINE_STYLES)],
        "marker": MARKERS[i % len(MARKERS)],
    }


def _legend_above(ax: "Axes", handles: Sequence[Any] | None = None, *, ncols: int | None = None) -> None:
    kwargs: dict[str, Any] = {
        "loc": "lower left",
        "bbox_to_anchor": (0.0, 1.01),
        "frameon": False,
        "borderaxespad": 0.0,
        "handlelength": 3.0,
    }
    if handles is not None:
        kwargs["handles"] = handles
    count = len(handles) if handles is not None else len(ax.get_legend_handles_labels()[0])
    kwargs["ncols"] = ncols or max(1, min(count, 4))
    ax.legend(**kwargs)


# --------------------------------------------------------------------------------------------
# CONSORT flow diagram
# --------------------------------------------------------------------------------------------

_PT = 72.0  # points per inch
_LINE = FONT_SIZE * 1.25  # line height, points
_PAD = 4.0  # inner padding of a box, points
_GAP = 14.0  # vertical space between boxes, points
_STAGE_STRIP = 20.0  # width of the stage labels on the left, points


class _Box:
    """A box of the diagram: wrapped lines (text, indent, bold) within a width."""

    def __init__(self, entries: Sequence[tuple[Sequence[str], float, bool]], width: float) -> None:
        self.width = width
        self.lines: list[tuple[str, float, bool]] = []
        for chunks, indent, bold in entries:
            # the lines after the first of a bulleted entry hang under its text
            bullet = chunks[0][:2] if chunks and chunks[0][:2] in ("• ", "– ") else ""
            hang = _text_width(bullet, bold=bold) if bullet else 0.0
            room = width - 2 * _PAD - indent
            wrapped = _wrap(chunks, room, rest=room - hang, bold=bold)
            for k, line in enumerate(wrapped):
                self.lines.append((line, indent + (hang if k else 0.0), bold))

    @property
    def height(self) -> float:
        return 2 * _PAD + len(self.lines) * _LINE


def _consort_check(flow: ConsortFlow) -> None:
    screened = _maybe_count(flow.get("screened"), "flow['screened']")
    excluded = _maybe_count(flow.get("excluded"), "flow['excluded']")
    not_eligible = _maybe_count(flow.get("not_eligible"), "flow['not_eligible']")
    declined = _maybe_count(flow.get("declined"), "flow['declined']")
    randomized = _count(flow.get("randomized"), "flow['randomized']")
    _pairs(flow.get("reasons"), "flow['reasons']")
    if screened is not None and excluded is not None and screened != excluded + randomized:
        raise ValueError(
            f"flow: screened ({screened}) must equal excluded ({excluded}) + randomized ({randomized})"
        )
    if None not in (excluded, not_eligible, declined) and excluded != (not_eligible or 0) + (declined or 0):
        raise ValueError(
            f"flow: excluded ({excluded}) must equal not_eligible ({not_eligible}) + declined ({declined})"
        )
    arms = flow.get("arms")
    if arms is None:
        raise ValueError("flow['arms'] is missing (an empty list draws the blinded diagram)")
    if arms:
        if not 2 <= len(arms) <= 4:
            raise ValueError(f"flow['arms'] must hold 2 to 4 arms, not {len(arms)}")
        for i, arm in enumerate(arms):
            name = f"flow['arms'][{i}]"
            if not isinstance(arm.get("label"), str) or not arm["label"]:
                raise ValueError(f"{name}['label'] must be a non-empty text")
            c = {
                k: _count(arm.get(k), f"{name}[{k!r}]")
                for k in (
                    "allocated",
                    "received",
                    "not_received",
                    "lost",
                    "discontinued",
                    "analysed",
                    "excluded_from_analysis",
                )
            }
            reasons = _pairs(arm.get("discontinued_reasons"), f"{name}['discontinued_reasons']")
            if c["allocated"] != c["received"] + c["not_received"]:
                raise ValueError(f"{name}: allocated must equal received + not_received")
            if c["allocated"] != c["analysed"] + c["excluded_from_analysis"]:
                raise ValueError(f"{name}: allocated must equal analysed + excluded_from_analysis")
            if reasons and sum(n for _, n in reasons) != c["discontinued"]:
                raise ValueError(f"{name}: discontinued_reasons must add up to discontinued")
        total = sum(a["allocated"] for a in arms)
        if total != randomized:
            raise ValueError(f"flow: randomized ({randomized}) must equal the arms' allocated ({total})")
    else:
        pooled = flow.get("pooled")
        if pooled is None:
            raise ValueError("flow['pooled'] is required when flow['arms'] is empty (blinded diagram)")
        _count(pooled.get("lost"), "flow['pooled']['lost']")
        discontinued = _count(pooled.get("discontinued"), "flow['pooled']['discontinued']")
        analysed = _maybe_count(pooled.get("analysed"), "flow['pooled']['analysed']")
        reasons = _pairs(pooled.get("discontinued_reasons"), "flow['pooled']['discontinued_reasons']")
        if reasons and sum(n for _, n in reasons) != discontinued:
            raise ValueError("flow['pooled']: discontinued_reasons must add up to discontinued")
        if analysed is not None and analysed > (randomized or 0):
            raise ValueError("flow['pooled']: analysed must not exceed randomized")


def consort_diagram(flow: ConsortFlow) -> str:
    """Draw the CONSORT 2010 flow diagram.

    Parameters
    ----------
    flow : ConsortFlow
        ``{"screened": int | None, "excluded": int | None, "not_eligible": int | None,
        "reasons": [[text, n], ...], "declined": int | None, "randomized": int,
        "arms": [{"label": str, "allocated": int, "received": int, "not_received": int,
        "lost": int, "discontinued": int, "discontinued_reasons": [[text, n], ...],
        "analysed": int, "excluded_from_analysis": int}, ...],
        "pooled": {"lost": int, "discontinued": int, "analysed": int | None} | None}``.
        With 2 to 4 arms, one column per arm (allocation, follow-up, analysis); with no arm
        (blinded), pooled follow-up and analysis boxes.

    Returns
    -------
    str
        SVG text, 6.9 in wide.

    Raises
    ------
    ValueError
        If a count is missing or negative, or the counts break an invariant of the diagram
        (assessed = excluded + randomized, excluded = not eligible + declined, randomized =
        sum of allocated, allocated = received + not received = analysed + excluded from
        analysis, withdrawal kinds adding up to the discontinued).
    """
    if not isinstance(flow, dict) or not flow:
        raise ValueError("flow is empty: there is nothing to draw")
    _consort_check(flow)
    width = MAX_WIDTH_IN * _PT
    left, right = _STAGE_STRIP + 6.0, width - 2.0
    centre = (left + right) / 2

    # Enrolment
    assessed = _Box([(["Assessed for eligibility", _n(flow["screened"])], 0.0, True)], 190.0)
    entries: list[tuple[Sequence[str], float, bool]] = [(["Excluded", _n(flow["excluded"])], 0.0, True)]
    entries.append((["• Not meeting eligibility criteria", _n(flow["not_eligible"])], 0.0, False))
    reasons = _pairs(flow.get("reasons"), "flow['reasons']")
    for text, count in reasons:
        entries.append(([f"– {text}", _n(count)], 10.0, False))
    if reasons and flow["not_eligible"] is not None and sum(c for _, c in reasons) != flow["not_eligible"]:
        entries.append((["(a person may fail more than one criterion)"], 10.0, False))
    entries.append(
        (["• Declined to participate or not randomized for other reasons", _n(flow["declined"])], 0.0, False)
    )
    excluded_x = centre + 24.0
    excluded = _Box(entries, right - excluded_x)
    randomized = _Box([(["Randomized", _n(flow["randomized"])], 0.0, True)], 150.0)

    arms = list(flow["arms"])
    columns: list[list[_Box]] = []
    if arms:
        k = len(arms)
        gap = 10.0
        col_w = (right - left - gap * (k - 1)) / k
        xs = [left + i * (col_w + gap) for i in range(k)]
        for arm in arms:
            label = arm["label"]
            allocation = _Box(
                [
                    ([f"Allocated to {label}", _n(arm["allocated"])], 0.0, True),
                    (["• Received allocated intervention", _n(arm["received"])], 0.0, False),
                    (["• Did not receive allocated intervention", _n(arm["not_received"])], 0.0, False),
                ],
                col_w,
            )
            follow = [
                (["Lost to follow-up", _n(arm["lost"])], 0.0, False),
                (["Discontinued", _n(arm["discontinued"])], 0.0, False),
            ]
            follow += [
                ([f"• {text}", _n(c)], 0.0, False)
                for text, c in _pairs(arm["discontinued_reasons"], "discontinued_reasons")
            ]
            analysis = _Box(
                [
                    (["Analysed", _n(arm["analysed"])], 0.0, True),
                    (["• Excluded from analysis", _n(arm["excluded_from_analysis"])], 0.0, False),
                ],
                col_w,
            )
            columns.append([allocation, _Box(follow, col_w), analysis])
        stages = ["Allocation", "Follow-up", "Analysis"]
    else:
        pooled = cast(ConsortPooled, flow["pooled"])  # present: checked above
        pooled_w = 260.0
        xs = [centre - pooled_w / 2]
        follow = [
            (["All arms (the allocation is blinded)"], 0.0, True),
            (["Lost to follow-up", _n(pooled["lost"])], 0.0, False),
            (["Discontinued", _n(pooled["discontinued"])], 0.0, False),
        ]
        follow += [
            ([f"• {text}", _n(c)], 0.0, False)
            for text, c in _pairs(pooled.get("discontinued_reasons"), "discontinued_reasons")
        ]
        analysis = _Box([(["Analysed", _n(pooled["analysed"])], 0.0, True)], pooled_w)
        columns.append([_Box(follow, pooled_w), analysis])
        stages = ["Follow-up", "Analysis"]

    # vertical layout, top to bottom (y grows downward)
    y = 4.0
    assessed_y = y
    y += assessed.height + _GAP
    excluded_y = y
    y += excluded.height + _GAP
    randomized_y = y
    y += randomized.height
    split_y = y + _GAP / 2 if arms else y
    y += _GAP if not arms else _GAP * 1.5
    # a row is at least as tall as its stage label, written upwards in the strip on the left
    row_h = [
        max(max(col[r].height for col in columns), _text_width(name, bold=True) + 2 * _PAD)
        for r, name in enumerate(stages)
    ]
    row_y: list[float] = []
    for h in row_h:
        row_y.append(y)
        y += h + _GAP
    height = y - _GAP + 4.0

    with _drawing():
        from matplotlib.patches import FancyBboxPatch, Rectangle

        fig = _figure(MAX_WIDTH_IN, height / _PT, constrained=False)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_xlim(0.0, width)
        ax.set_ylim(height, 0.0)
        ax.set_axis_off()

        def box(b: _Box, x: float, top: float, h: float | None = None) -> None:
            ax.add_patch(
                Rectangle((x, top), b.width, h or b.height, facecolor="#ffffff", edgecolor=INK, linewidth=0.8)
            )
            for i, (line, indent, bold) in enumerate(b.lines):
                ax.text(
                    x + _PAD + indent,
                    top + _PAD + i * _LINE,
                    _escape(line),
                    ha="left",
                    va="top",
                    fontweight="bold" if bold else "normal",
                )

        def line(x0: float, y0: float, x1: float, y1: float) -> None:
            ax.plot([x0, x1], [y0, y1], color=INK, linewidth=0.8, solid_capstyle="butt")

        def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
            ax.annotate(
                "",
                xy=(x1, y1),
                xytext=(x0, y0),
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": INK,
                    "linewidth": 0.8,
                    "shrinkA": 0.0,
                    "shrinkB": 0.0,
                    "mutation_scale": 8.0,
                },
            )

        def stage(text: str, top: float, bottom: float) -> None:
            ax.add_patch(
                FancyBboxPatch(
                    (2.0, top),
                    _STAGE_STRIP - 4.0,
                    bottom - top,
                    boxstyle="round,pad=0,rounding_size=4",
                    facecolor="#D6E6F4",
                    edgecolor="#0072B2",
                    linewidth=0.8,
                )
            )
            ax.text(
                2.0 + (_STAGE_STRIP - 4.0) / 2,
                (top + bottom) / 2,
                _escape(text),
                rotation=90,
                ha="center",
                va="center",
                fontweight="bold",
            )

        box(assessed, centre - assessed.width / 2, assessed_y)
        box(excluded, excluded_x, excluded_y)
        box(randomized, centre - randomized.width / 2, randomized_y)
        line(centre, assessed_y + assessed.height, centre, excluded_y + excluded.height / 2)
        arrow(centre, excluded_y + excluded.height / 2, excluded_x, excluded_y + excluded.height / 2)
        arrow(centre, excluded_y + excluded.height / 2, centre, randomized_y)
        stage("Enrolment", assessed_y, randomized_y + randomized.height)

        col_w = columns[0][0].width
        centres = [x + col_w / 2 for x in xs]
        bottom = randomized_y + randomized.height
        if arms:
            line(centre, bottom, centre, split_y)
            line(centres[0], split_y, centres[-1], split_y)
            for c in centres:
                arrow(c, split_y, c, row_y[0])
        else:
            arrow(centre, bottom, centre, row_y[0])
        for r, name in enumerate(stages):
            h = row_h[r]
            for x, c, col in zip(xs, centres, columns, strict=True):
                box(col[r], x, row_y[r], h)
                if r:
                    previous = row_y[r - 1] + row_h[r - 1]
                    arrow(c, previous, c, row_y[r])
            stage(name, row_y[r], row_y[r] + h)
        return _svg(fig)


# --------------------------------------------------------------------------------------------
# Kaplan-Meier
# --------------------------------------------------------------------------------------------


def _km_check(curves: Sequence[KmSeries]) -> None:
    _nonempty(curves, "curves")
    if len(curves) > len(PALETTE):
        raise ValueError(f"curves: at most {len(PALETTE)} curves can be told apart")
    for i, c in enumerate(curves):
        name = f"curves[{i}]"
        if not isinstance(c.get("label"), str) or not c["label"]:
            raise ValueError(f"{name}['label'] must be a non-empty text")
        for key in ("time", "survival", "ci_low", "ci_high", "censored"):
            if key not in c:
                raise ValueError(f"{name}[{key!r}] is missing")
        _nonempty(c["time"], f"{name}['time']")
        times = [_number(t, f"{name}['time']") for t in c["time"]]
        if times[0] != 0 or _number(c["survival"][0], f"{name}['survival']") != 1:
            raise ValueError(f"{name}['time'] and ['survival'] must start at time 0 with survival 1")
        _ascending(times, f"{name}['time']")
        for key in ("survival", "ci_low", "ci_high"):
            _same_length(c["time"], c[key], f"{name}['time']", f"{name}[{key!r}]")  # type: ignore[literal-required]
        for s in c["survival"]:
            if not 0.0 <= _number(s, f"{name}['survival']") <= 1.0:
                raise ValueError(f"{name}['survival'] must lie between 0 and 1")
        for key in ("ci_low", "ci_high"):
            for v in c[key]:  # type: ignore[literal-required]
                _limit(v, f"{name}[{key!r}]")
        censored = c["censored"]
        _same_length(
            censored["time"], censored["count"], f"{name}['censored']['time']", f"{name}['censored']['count']"
        )
        ctimes = [_number(t, f"{name}['censored']['time']") for t in censored["time"]]
        _ascending(ctimes, f"{name}['censored']['time']", strict=True)
        if ctimes and ctimes[0] < 0:
            raise ValueError(f"{name}['censored']['time'] must not be negative")
        for n in censored["count"]:
            _count(n, f"{name}['censored']['count']")


def _at_risk_check(at_risk: AtRisk) -> None:
    _nonempty(at_risk.get("times"), "at_risk['times']")
    _nonempty(at_risk.get("rows"), "at_risk['rows']")
    times = [_number(t, "at_risk['times']") for t in at_risk["times"]]
    _ascending(times, "at_risk['times']", strict=True)
    for i, row in enumerate(at_risk["rows"]):
        if not isinstance(row.get("label"), str) or not row["label"]:
            raise ValueError(f"at_risk['rows'][{i}]['label'] must be a non-empty text")
        _same_length(
            at_risk["times"], row.get("counts") or (), "at_risk['times']", f"at_risk['rows'][{i}]['counts']"
        )
        for n in row["counts"]:
            _count(n, f"at_risk['rows'][{i}]['counts']")


def km_plot(
    curves: Sequence[KmSeries],
    *,
    at_risk: AtRisk | None,
    xlabel: str,
    ylabel: str,
    end_day: float,
    ci_bands: bool = True,
) -> str:
    """Draw Kaplan-Meier curves with censor ticks and a number-at-risk table.

    Parameters
    ----------
    curves : sequence of KmSeries
        One per arm (or one pooled curve): ``{"label": str, "time": [...], "survival": [...],
        "ci_low": [...], "ci_high": [...], "censored": {"time": [...], "count": [...]}}``,
        i.e. a Kaplan-Meier record's ``statistics["curve"]`` with its label. Each curve is
        drawn as a step function (``where="post"``) up to its last observed time (its last
        event or censoring), with a "|" tick at each censoring time.
    at_risk : AtRisk or None
        ``{"times": [...], "rows": [{"label": str, "counts": [...]}]}``: the table drawn under
        the axes, one row per arm, one column per time; the x ticks are these times. None
        draws no table.
    xlabel, ylabel : str
        Axis labels (e.g. "Days since randomization", "Proportion without response").
    end_day : float
        End of follow-up: the x axis runs from 0 to it.
    ci_bands : bool
        Draw the log-log confidence bands, lightly, where they are defined.

    Returns
    -------
    str
        SVG text, 6.9 in wide. The censor ticks of curve ``i`` are the ``<use>`` elements of
        the group with id ``km-censored-<i>``.

    Raises
    ------
    ValueError
        If `curves` (or a list in it, or `at_risk`'s times or rows) is empty, lengths differ,
        times are not ascending, or a survival is outside [0, 1].
    """
    import numpy as np

    _km_check(curves)
    if at_risk is not None:
        _at_risk_check(at_risk)
    end = _number(end_day, "end_day")
    if end <= 0:
        raise ValueError("end_day must be a positive number of days")

    rows = list(at_risk["rows"]) if at_risk is not None else []
    table_h = (len(rows) + 1) * 0.19 + 0.1 if rows else 0.0
    with _drawing():
        from matplotlib.lines import Line2D

        fig = _figure(MAX_WIDTH_IN, 3.3 + table_h)
        if rows:
            grid = fig.add_gridspec(2, 1, height_ratios=(3.3, table_h))
            ax = fig.add_subplot(grid[0])
            table = fig.add_subplot(grid[1], sharex=ax)
        else:
            ax = fig.add_subplot()
        handles = []
        for i, c in enumerate(curves):
            style = _style(i)
            time = np.asarray(c["time"], dtype=float)
            surv = np.asarray(c["survival"], dtype=float)
            ctime = np.asarray(c["censored"]["time"], dtype=float)
            last = max(time[-1], ctime[-1] if len(ctime) else time[-1])
            x = np.append(time, last)
            y = np.append(surv, surv[-1])
            if ci_bands:
                low = np.array([_limit(v, "ci_low") for v in c["ci_low"]] + [math.nan])
                high = np.array([_limit(v, "ci_high") for v in c["ci_high"]] + [math.nan])
                low[-1], high[-1] = low[-2], high[-2]
                ok = np.isfinite(low) & np.isfinite(high)
                if ok.any():
                    ax.fill_between(
                        x, low, high, where=ok, step="post", color=style["color"], alpha=0.14, linewidth=0
                    )
            ax.step(
                x, y, where="post", color=style["color"], linestyle=style["linestyle"], gid=f"km-curve-{i}"
            )
            marks = [surv[bisect.bisect_right(c["time"], t) - 1] for t in ctime]
            ax.plot(
                ctime,
                marks,
                linestyle="none",
                marker="|",
                markersize=7,
                markeredgewidth=1.0,
                color=style["color"],
                clip_on=False,
                gid=f"km-censored-{i}",
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    color=style["color"],
                    linestyle=style["linestyle"],
                    marker="|",
                    markersize=7,
                    markeredgewidth=1.0,
                    label=_escape(c["label"]),
                )
            )
        ax.set_xlim(0.0, end)
        ax.set_ylim(0.0, 1.02)
        ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
        ax.set_ylabel(_escape(ylabel))
        ax.set_xlabel(_escape(xlabel))
        ax.spines[["top", "right"]].set_visible(False)
        _legend_above(
            ax,
            [
                *handles,
                Line2D([], [], color=GREY, linestyle="none", marker="|", markersize=7, label="censored"),
            ],
        )
        if at_risk is not None:
            times = [float(t) for t in at_risk["times"]]
            ax.set_xticks(times, [f"{t:g}" for t in times])
            table.set_ylim(len(rows) - 0.5, -0.5)
            table.set_yticks(range(len(rows)), [_escape(r["label"]) for r in rows])
            for tick, r in zip(table.get_yticklabels(), range(len(rows)), strict=True):
                tick.set_color(PALETTE[r % len(PALETTE)] if len(rows) == len(curves) else INK)
            # the labels clear the counts of the first column, centred on its time
            first = max(_text_width(str(r["counts"][0])) for r in rows) / 2 if times[0] <= 0 else 0.0
            table.tick_params(axis="both", length=0, labelbottom=False)
            table.tick_params(axis="y", pad=first + 4.0)
            for side in ("top", "right", "bottom", "left"):
                table.spines[side].set_visible(False)
            for r, row in enumerate(rows):
                for t, n in zip(times, row["counts"], strict=True):
                    table.text(t, r, str(n), ha="center", va="center", clip_on=False)
            table.set_title("Number at risk", loc="left", fontsize=FONT_SIZE, fontweight="bold")
        return _svg(fig)


# --------------------------------------------------------------------------------------------
# Forest plot
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int) -> str:
    return "not estimable" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def forest_plot(
    rows: Sequence[ForestRow],
    *,
    xlabel: str,
    null_value: float = 0.0,
    log_scale: bool = False,
    digits: int = 2,
    ci_label: str = "95% CI",
    favours: tuple[str, str] | None = None,
) -> str:
    """Draw a forest plot: one row per estimate, point and confidence interval.

    Parameters
    ----------
    rows : sequence of ForestRow
        ``{"label": str, "group": str | None, "estimate": float | None, "ci_low": float |
        None, "ci_high": float | None, "n": int | None}``, drawn top to bottom in this order;
        a group heading is drawn where ``group`` changes. A row whose estimate is None is
        written "not estimable" and has no point.
    xlabel : str
        Label of the estimate's axis.
    null_value : float
        The value of no effect (0 for differences, 1 for ratios): a vertical line.
    log_scale : bool
        Logarithmic axis (ratios); every value must then be positive.
    digits : int
        Decimal places of the estimates written on the right.
    ci_label : str
        Heading of the estimate column ("Estimate (95% CI)").
    favours : (str, str), optional
        Texts written left and right of the null line above the rows, e.g.
        ``("favours CBT", "favours attention control")``.

    Returns
    -------
    str
        SVG text, 6.9 in wide.

    Raises
    ------
    ValueError
        If `rows` is empty, a label is missing, an interval does not contain its estimate, or
        a value is not positive on a log scale.
    """
    _nonempty(rows, "rows")
    if favours is not None and (len(favours) != 2 or not all(isinstance(f, str) and f for f in favours)):
        raise ValueError("favours must be a pair of texts (left of the null line, right of it)")
    null = _number(null_value, "null_value")
    if log_scale and null <= 0:
        raise ValueError("null_value must be positive on a log scale")
    values: list[float] = [null]
    for i, row in enumerate(rows):
        name = f"rows[{i}]"
        if not isinstance(row.get("label"), str) or not row["label"]:
            raise ValueError(f"{name}['label'] must be a non-empty text")
        est = _maybe_number(row.get("estimate"), f"{name}['estimate']")
        low = _maybe_number(row.get("ci_low"), f"{name}['ci_low']")
        high = _maybe_number(row.get("ci_high"), f"{name}['ci_high']")
        _maybe_count(row.get("n"), f"{name}['n']")
        for v in (est, low, high):
            if v is not None:
                if log_scale and v <= 0:
                    raise ValueError(f"{name}: values must be positive on a log scale")
                values.append(v)
        if est is not None and low is not None and high is not None and not low <= est <= high:
            raise ValueError(f"{name}: the interval ({low}, {high}) does not contain the estimate {est}")

    has_n = any(row.get("n") is not None for row in rows)
    label_width = (0.37 - (0.05 if has_n else 0.0)) * MAX_WIDTH_IN * _PT
    # one line per heading, one or more per row (long labels are wrapped); y in lines
    lines: list[tuple[float, str, ForestRow | None]] = []
    group: str | None = None
    y = 1.0
    for row in rows:
        g = row.get("group")
        if g and g != group:
            lines.append((y, g, None))
            y += 1.0
        group = g
        wrapped = _wrap([row["label"]], label_width - (12.0 if g else 0.0))
        centre = y + (len(wrapped) - 1) / 2
        lines.append((centre, "\n".join(wrapped), row))
        y += len(wrapped)
    row_in = 0.22
    below = 0.55 + (0.22 if favours is not None else 0.0)  # tick labels, favours, axis label
    height = y * row_in + 0.2 + below
    with _drawing():
        from matplotlib.transforms import blended_transform_factory

        fig = _figure(MAX_WIDTH_IN, height, constrained=False)
        top = 1.0 - 0.12 / height
        bottom = below / height
        ax = fig.add_axes((0.42, bottom, 0.33, top - bottom))
        ax.set_ylim(y - 0.4, -0.6)
        text_at = blended_transform_factory(fig.transFigure, ax.transData)
        label_x, n_x, est_x = 0.01, 0.40, 0.77
        indent = 12.0 / (MAX_WIDTH_IN * _PT)
        for at, text, item in lines:
            if item is None:
                ax.text(label_x, at, _escape(text), transform=text_at, va="center", fontweight="bold")
                continue
            shift = indent if item.get("group") else 0.0
            ax.text(label_x + shift, at, _escape(text), transform=text_at, va="center", linespacing=1.25)
            n = item.get("n")
            if has_n and n is not None:
                ax.text(n_x, at, str(n), transform=text_at, va="center", ha="right")
            est = _maybe_number(item["estimate"], "estimate")
            low = _maybe_number(item["ci_low"], "ci_low")
            high = _maybe_number(item["ci_high"], "ci_high")
            if est is None:
                ax.text(est_x, at, "not estimable", transform=text_at, va="center")
                continue
            if low is not None and high is not None:
                ax.plot([low, high], [at, at], color=INK, linewidth=1.2, solid_capstyle="butt")
            ax.plot([est], [at], linestyle="none", marker="s", markersize=5.5, color=INK)
            ax.text(
                est_x,
                at,
                f"{_fmt(est, digits)} ({_fmt(low, digits)} to {_fmt(high, digits)})",
                transform=text_at,
                va="center",
            )
        if has_n:
            ax.text(n_x, 0, "n", transform=text_at, va="center", ha="right", fontweight="bold")
        ax.text(
            est_x, 0, _escape(f"Estimate ({ci_label})"), transform=text_at, va="center", fontweight="bold"
        )
        ax.axvline(null, color=GREY, linewidth=0.8, linestyle="--")
        if log_scale:
            ax.set_xscale("log")
        lo, hi = min(values), max(values)
        if log_scale:
            span = math.log(hi / lo) if hi > lo else 1.0
            ax.set_xlim(lo / math.exp(0.08 * span), hi * math.exp(0.08 * span))
        else:
            span = hi - lo if hi > lo else 1.0
            ax.set_xlim(lo - 0.08 * span, hi + 0.08 * span)
        if log_scale:
            from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

            ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if favours is not None:
            # under the tick labels, either side of the null value; the axis label below them
            for text, side, dx in ((f"← {favours[0]}", "right", -4.0), (f"{favours[1]} →", "left", 4.0)):
                ax.annotate(
                    _escape(text),
                    xy=(null, 0.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(dx, -17.0),
                    textcoords="offset points",
                    ha=side,
                    va="top",
                )
            ax.xaxis.labelpad = 18.0
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel(_escape(xlabel))
        return _svg(fig)


# --------------------------------------------------------------------------------------------
# Other figures
# --------------------------------------------------------------------------------------------


def lsmeans_by_visit(
    series: Sequence[LsMeanSeries], *, ylabel: str, xlabel: str = "Visit (study day)"
) -> str:
    """Draw LS-mean change from baseline by visit per arm, with confidence-interval bars.

    Parameters
    ----------
    series : sequence of LsMeanSeries
        ``{"label": str, "points": [{"visit": str, "day": float, "estimate": float | None,
        "ci_low": float | None, "ci_high": float | None}, ...]}`` per arm (the
        ``MMRM.LSMEAN.<arm>.<visit>`` records). A point whose estimate is None is not drawn.
    ylabel : str
        Label of the change's axis.
    xlabel : str
        Label of the visit axis (its ticks are the visit days, labelled with the visit codes).

    Returns
    -------
    str
        SVG text, 6.9 in wide; the arms are dodged slightly along x; a line marks zero.

    Raises
    ------
    ValueError
        If `series` (or an arm's points) is empty, or a visit code has two different days.
    """
    _nonempty(series, "series")
    day_of: dict[str, float] = {}
    drawn: list[list[tuple[float, float, float | None, float | None]]] = []
    for i, s in enumerate(series):
        name = f"series[{i}]"
        if not isinstance(s.get("label"), str) or not s["label"]:
            raise ValueError(f"{name}['label'] must be a non-empty text")
        _nonempty(s.get("points"), f"{name}['points']")
        points = []
        for j, p in enumerate(s["points"]):
            where = f"{name}['points'][{j}]"
            if not isinstance(p.get("visit"), str) or not p["visit"]:
                raise ValueError(f"{where}['visit'] must be a non-empty text")
            day = _number(p.get("day"), f"{where}['day']")
            if day_of.setdefault(p["visit"], day) != day:
                raise ValueError(f"{where}: visit {p['visit']!r} has two different days")
            est = _maybe_number(p.get("estimate"), f"{where}['estimate']")
            low = _maybe_number(p.get("ci_low"), f"{where}['ci_low']")
            high = _maybe_number(p.get("ci_high"), f"{where}['ci_high']")
            if est is None:
                continue  # not estimable: nothing drawn
            if low is not None and high is not None and not low <= est <= high:
                raise ValueError(f"{where}: the interval ({low}, {high}) does not contain the estimate {est}")
            points.append((day, est, low, high))
        drawn.append(sorted(points))
    if len(set(day_of.values())) != len(day_of):
        raise ValueError("series: two visits have the same day")
    visit_of = {d: v for v, d in day_of.items()}
    days = sorted(visit_of)
    span = (days[-1] - days[0]) or 1.0
    step = 0.012 * span
    k = len(series)
    with _drawing():
        fig = _figure(MAX_WIDTH_IN, 3.4)
        ax = fig.add_subplot()
        ax.axhline(0.0, color=GREY, linewidth=0.8)
        for i, (s, points) in enumerate(zip(series, drawn, strict=True)):
            style = _style(i)
            shift = (i - (k - 1) / 2) * step
            ax.plot(
                [d + shift for d, _, _, _ in points],
                [e for _, e, _, _ in points],
                color=style["color"],
                linestyle=style["linestyle"],
                marker=style["marker"],
                markersize=5,
                label=_escape(s["label"]),
            )
            bars = [(d + shift, e, lo, hi) for d, e, lo, hi in points if lo is not None and hi is not None]
            if bars:
                ax.errorbar(
                    [d for d, _, _, _ in bars],
                    [e for _, e, _, _ in bars],
                    yerr=[[e - lo for _, e, lo, _ in bars], [hi - e for _, e, _, hi in bars]],
                    color=style["color"],
                    linestyle="none",
                    capsize=3,
                    elinewidth=1.0,
                )
        ax.set_xticks(days, [_escape(f"{visit_of[d]}\n{d:g}") for d in days])
        ax.set_xlim(days[0] - 0.06 * span, days[-1] + 0.06 * span)
        ax.set_xlabel(_escape(xlabel))
        ax.set_ylabel(_escape(ylabel))
        ax.spines[["top", "right"]].set_visible(False)
        _legend_above(ax)
        return _svg(fig)


def _step_check(curve: Any, name: str) -> tuple[list[float], list[float]]:
    if not isinstance(curve, dict):
        raise ValueError(f"{name} must be a step curve {{'time': [...], 'proportion': [...]}}")
    _nonempty(curve.get("time"), f"{name}['time']")
    times = [_number(t, f"{name}['time']") for t in curve["time"]]
    _ascending(times, f"{name}['time']")
    _same_length(curve["time"], curve.get("proportion") or (), f"{name}['time']", f"{name}['proportion']")
    props = []
    for v in curve["proportion"]:
        p = _number(v, f"{name}['proportion']")
        if p is None or not 0.0 <= p <= 1.0:
            raise ValueError(f"{name}['proportion'] must lie between 0 and 1")
        props.append(p)
    return times, props


def attrition_chart(
    series: Sequence[AttritionSeries], *, days_label: str, end_day: float | None = None
) -> str:
    """Draw the CONSORT-EHEALTH attrition chart: stopping use of the app versus leaving the trial.

    Parameters
    ----------
    series : sequence of AttritionSeries
        Per app arm ``{"label": str, "using": {"time": [...], "proportion": [...]},
        "in_trial": {"time": [...], "proportion": [...]}}``: the proportions (0 to 1) still
        using the app and still in the trial, as step functions over study day. An arm keeps
        its colour; using the app is a solid line, being in the trial a dashed one.
    days_label : str
        Label of the study-day axis.
    end_day : float, optional
        Right end of the axis (default: the last day of the curves).

    Returns
    -------
    str
        SVG text, 6.9 in wide, y axis 0 to 100 %.

    Raises
    ------
    ValueError
        If `series` is empty, a curve is empty or its lengths differ, days are not
        ascending, or a proportion is outside [0, 1].
    """
    _nonempty(series, "series")
    checked = []
    for i, s in enumerate(series):
        if not isinstance(s.get("label"), str) or not s["label"]:
            raise ValueError(f"series[{i}]['label'] must be a non-empty text")
        checked.append(
            (
                _step_check(s.get("using"), f"series[{i}]['using']"),
                _step_check(s.get("in_trial"), f"series[{i}]['in_trial']"),
            )
        )
    last = max(t[-1] for pair in checked for t, _ in pair)
    end = _maybe_number(end_day, "end_day")
    with _drawing():
        from matplotlib.lines import Line2D
        from matplotlib.ticker import PercentFormatter

        fig = _figure(MAX_WIDTH_IN, 3.4)
        ax = fig.add_subplot()
        handles = []
        for i, (s, (using, in_trial)) in enumerate(zip(series, checked, strict=True)):
            colour, marker = PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]
            for (t, p), dash in ((using, "-"), (in_trial, "--")):
                ax.step(t, p, where="post", color=colour, linestyle=dash)
            handles.append(
                Line2D(
                    [],
                    [],
                    color=colour,
                    linestyle="-",
                    marker=marker,
                    markersize=5,
                    label=_escape(s["label"]),
                )
            )
            # markers on the curves at a few days tell the arms apart in grey
            marks = [last * f for f in (0.2, 0.5, 0.8)]
            for t, p in (using, in_trial):
                ax.plot(
                    marks,
                    [p[bisect.bisect_right(t, m) - 1] if m >= t[0] else math.nan for m in marks],
                    linestyle="none",
                    marker=marker,
                    markersize=5,
                    color=colour,
                )
        handles += [
            Line2D([], [], color=INK, linestyle="-", label="still using the app"),
            Line2D([], [], color=INK, linestyle="--", label="still in the trial"),
        ]
        ax.set_ylim(0.0, 1.02)
        ax.set_xlim(0.0, end if end is not None else last)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("Participants")
        ax.set_xlabel(_escape(days_label))
        ax.spines[["top", "right"]].set_visible(False)
        _legend_above(ax, handles, ncols=min(len(handles), 4))
        return _svg(fig)


def _as_date(value: Any, name: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{name} must be a date (YYYY-MM-DD), not {value!r}")


def enrolment_chart(series: Sequence[EnrolmentSeries], *, target: int | None = None) -> str:
    """Draw cumulative randomized participants over calendar date, per site and in total.

    Parameters
    ----------
    series : sequence of EnrolmentSeries
        Per site ``{"label": str, "dates": [date or "YYYY-MM-DD", ...], "randomized":
        [int, ...]}``: the participants randomized on each date (dates ascending, no
        repeats). Each site's cumulative count is drawn as a step line up to the latest date
        of all sites; the total (sum of the sites) is the thick black line.
    target : int, optional
        The planned sample size: a dashed horizontal line.

    Returns
    -------
    str
        SVG text, 6.9 in wide.

    Raises
    ------
    ValueError
        If `series` (or a site's dates) is empty, lengths differ, a date is invalid or
        repeated, or a count is negative.
    """
    _nonempty(series, "series")
    sites: list[tuple[str, list[date], list[int]]] = []
    for i, s in enumerate(series):
        name = f"series[{i}]"
        if not isinstance(s.get("label"), str) or not s["label"]:
            raise ValueError(f"{name}['label'] must be a non-empty text")
        _nonempty(s.get("dates"), f"{name}['dates']")
        _same_length(s["dates"], s.get("randomized") or (), f"{name}['dates']", f"{name}['randomized']")
        dates = [_as_date(d, f"{name}['dates']") for d in s["dates"]]
        for a, b in zip(dates, dates[1:], strict=False):
            if b <= a:
                raise ValueError(f"{name}['dates'] must be ascending without repeats")
        counts = [_count(n, f"{name}['randomized']") for n in s["randomized"]]
        sites.append((s["label"], dates, counts))
    goal = _maybe_count(target, "target")
    last = max(d[-1] for _, d, _ in sites)
    totals: dict[date, int] = {}
    for _, dates, counts in sites:
        for d, n in zip(dates, counts, strict=True):
            totals[d] = totals.get(d, 0) + n

    def cumulative(dates: list[date], counts: list[int]) -> tuple[list[float], list[int]]:
        from matplotlib.dates import date2num

        running, out = 0, []
        for n in counts:
            running += n
            out.append(running)
        if dates[-1] < last:
            dates, out = [*dates, last], [*out, out[-1]]
        return [float(date2num(d)) for d in dates], out  # type: ignore[no-untyped-call]

    with _drawing():
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        fig = _figure(MAX_WIDTH_IN, 3.6)
        ax = fig.add_subplot()
        for i, (label, dates, counts) in enumerate(sites):
            style = _style(i)
            x, y = cumulative(dates, counts)
            ax.step(
                x, y, where="post", color=style["color"], linestyle=style["linestyle"], label=_escape(label)
            )
        days = sorted(totals)
        x, y = cumulative(days, [totals[d] for d in days])
        ax.step(x, y, where="post", color=INK, linewidth=2.2, label="All sites")
        if goal is not None:
            ax.axhline(goal, color=GREY, linestyle="--", linewidth=1.0, label=f"Target (n = {goal})")
        locator = AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.set_ylim(0, max([y[-1], goal or 0]) * 1.05 + 1)
        ax.set_ylabel("Participants randomized (cumulative)")
        ax.set_xlabel("Date of randomization")
        ax.spines[["top", "right"]].set_visible(False)
        _legend_above(ax)
        return _svg(fig)


def completeness_chart(rows: Sequence[CompletenessRow]) -> str:
    """Draw the share of participants with an analysed value by visit (pooled), as bars.

    Parameters
    ----------
    rows : sequence of CompletenessRow
        ``{"visit": str, "observed": int, "total": int, "group": str}`` (``group`` optional,
        e.g. the questionnaire: one bar per group within each visit), in visit order
        (the ``COMPLETENESS.<param>.<visit>`` records: observed, and observed + missing).

    Returns
    -------
    str
        SVG text, 6.9 in wide; each bar is labelled with its percentage.

    Raises
    ------
    ValueError
        If `rows` is empty, a count is negative, observed exceeds total, total is 0, or a
        visit and group appear twice.
    """
    _nonempty(rows, "rows")
    visits: list[str] = []
    groups: list[str] = []
    share: dict[tuple[str, str], float] = {}
    for i, row in enumerate(rows):
        name = f"rows[{i}]"
        if not isinstance(row.get("visit"), str) or not row["visit"]:
            raise ValueError(f"{name}['visit'] must be a non-empty text")
        observed = _count(row.get("observed"), f"{name}['observed']")
        total = _count(row.get("total"), f"{name}['total']")
        if total == 0 or observed > total:
            raise ValueError(
                f"{name}: observed ({observed}) must be between 0 and total ({total}), total > 0"
            )
        group = row.get("group") or ""
        key = (row["visit"], group)
        if key in share:
            raise ValueError(f"{name}: visit {row['visit']!r} appears twice")
        share[key] = observed / total
        if row["visit"] not in visits:
            visits.append(row["visit"])
        if group not in groups:
            groups.append(group)
    k = len(groups)
    width = 0.8 / k
    with _drawing():
        from matplotlib.ticker import PercentFormatter

        fig = _figure(MAX_WIDTH_IN, 3.0)
        ax = fig.add_subplot()
        for j, group in enumerate(groups):
            xs = [v + (j - (k - 1) / 2) * width for v in range(len(visits)) if (visits[v], group) in share]
            ys = [share[(v, group)] for v in visits if (v, group) in share]
            bars = ax.bar(
                xs,
                ys,
                width=width * 0.92,
                color=PALETTE[j % len(PALETTE)],
                edgecolor=INK,
                linewidth=0.6,
                label=_escape(group) if group else None,
            )
            ax.bar_label(bars, labels=[f"{100 * y:.0f}%" for y in ys], padding=2, fontsize=FONT_SIZE)
        ax.set_xticks(range(len(visits)), [_escape(v) for v in visits])
        ax.set_ylim(0.0, 1.12)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
        ax.set_ylabel("With an analysed value")
        ax.set_xlabel("Visit")
        ax.spines[["top", "right"]].set_visible(False)
        if any(groups):
            _legend_above(ax)
        return _svg(fig)
