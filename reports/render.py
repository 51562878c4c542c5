"""HTML from the report context (Jinja, autoescaped) and PDF/A-2b from the HTML (WeasyPrint).

The PDF follows the FDA's rules for submitted PDFs (DOMAIN.md section 4): every font embedded
(DejaVu Sans from the TTF files matplotlib ships, never a system font lookup), bookmarks from
the h1 and h2 headings opening in the bookmarks panel, US Letter, no attachments, scripts or
encryption, links the only annotations. The URL fetcher serves the packaged stylesheet and
fonts under a private scheme and refuses everything else (files, the network, data URLs).
"""

import logging
import re
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports.build import Progress, ReportContext, SignatureLine
from reports.context import fmt_timestamp

if TYPE_CHECKING:
    import jinja2

#: Base URL of the packaged assets; the templates and the stylesheet name them absolutely.
ASSET_SCHEME = "trials-report"
BASE_URL = f"{ASSET_SCHEME}:/"
#: Asset path -> (where it is, media type). Fonts are read from matplotlib's data folder.
FONT_FILES = {
    "fonts/DejaVuSans.ttf": "DejaVuSans.ttf",
    "fonts/DejaVuSans-Bold.ttf": "DejaVuSans-Bold.ttf",
    "fonts/DejaVuSans-Oblique.ttf": "DejaVuSans-Oblique.ttf",
}
#: The output intent's ICC profile, declared by report.css as the color profile `--srgb`.
ICC_PROFILE = "sRGB2014.icc"
OUTPUT_INTENT = "--srgb"
#: WeasyPrint's rendering steps (its progress logger numbers them 1 to 7).
_STEPS = 7
_STEP = re.compile(r"^Step (\d) - (.*)$")

_environment: "jinja2.Environment | None" = None
_lock = threading.Lock()


class AssetRefused(ValueError):
    """A URL the report's fetcher does not serve."""


def _jinja() -> "jinja2.Environment":
    global _environment
    with _lock:
        if _environment is None:
            import jinja2

            env = jinja2.Environment(
                loader=jinja2.PackageLoader("reports", "templates"),
                autoescape=jinja2.select_autoescape(["html"], default=True),
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.filters["svg"] = inline_svg
            env.filters["timestamp"] = fmt_timestamp
            _environment = env
        return _environment


def inline_svg(text: str | None) -> Any:
    """An SVG figure's text for inlining: from its ``<svg`` element on (no XML prolog). The
    figures name the stylesheet's font family ("Report Sans") first."""
    from markupsafe import Markup

    if not text:
        return Markup("")
    start = text.find("<svg")
    if start < 0:
        raise ValueError("a figure is not SVG text")
    return Markup(text[start:])  # noqa: S704 - SVG made by reports.figures from the report's own data


def render_html(context: ReportContext, *, signatures: Sequence[SignatureLine] = ()) -> str:
    """The report's HTML; its table of contents lists the body's h1 and h2 headings."""
    from markupsafe import Markup

    env = _jinja()
    values = {
        "ctx": context,
        "s": context.sections,
        "p": context.provenance,
        "signatures": [asdict(s) for s in signatures],
        "base_url": BASE_URL,
    }
    body = unique_figure_ids(env.get_template("body.html").render(**values))
    return env.get_template("report.html").render(**values, body=Markup(body), toc=headings(body))


_SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
_FIGURE_ID = re.compile(r'\bid="(fig[0-9a-f]+-)')


def unique_figure_ids(html: str) -> str:
    """The same figure inlined twice (two analyses of the same fit) would define its ids
    twice: every later copy gets its ids, and the references to them, renamed."""
    seen: dict[str, int] = {}

    def rename(match: re.Match[str]) -> str:
        svg = match.group(0)
        found = _FIGURE_ID.search(svg)
        if found is None:
            return svg
        prefix = found.group(1)
        copies = seen.get(prefix, 0)
        seen[prefix] = copies + 1
        return svg if copies == 0 else svg.replace(prefix, f"{prefix}copy{copies}-")

    return _SVG.sub(rename, html)


class _Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h1", "h2"):
            self._open = {"level": int(tag[1]), "id": dict(attrs).get("id"), "text": ""}

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2") and self._open is not None:
            heading, self._open = self._open, None
            heading["text"] = " ".join(heading["text"].split())
            if not heading["id"]:
                raise ValueError(f"heading {heading['text']!r} has no id for the table of contents")
            self.found.append(heading)


def headings(html: str) -> list[dict[str, Any]]:
    """The h1 and h2 headings of an HTML text, in order: level, id, text."""
    parser = _Headings()
    parser.feed(html)
    parser.close()
    return parser.found


# --------------------------------------------------------------------------------------------
# Assets
# --------------------------------------------------------------------------------------------


def asset_bytes(path: str) -> tuple[bytes, str]:
    """The packaged asset at `path` (``report.css`` or one of `FONT_FILES`) and its media type."""
    if path == "report.css":
        return resources.files("reports").joinpath("static", "report.css").read_bytes(), "text/css"
    if path == ICC_PROFILE:
        # The sRGB profile WeasyPrint ships, for the PDF/A output intent.
        return resources.files("weasyprint.pdf").joinpath(
            "sRGB2014.icc"
        ).read_bytes(), "application/vnd.iccprofile"
    if path in FONT_FILES:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        return (folder / FONT_FILES[path]).read_bytes(), "font/ttf"
    raise AssetRefused(f"no packaged report asset {path!r}")


def _fetcher_class() -> type:
    _weasyprint()
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class AssetFetcher(URLFetcher):  # type: ignore[misc]
        """Serves the packaged assets under ``trials-report:/``; refuses every other URL."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            scheme, _, rest = url.partition(":")
            if scheme.lower() != ASSET_SCHEME:
                raise AssetRefused(f"the report fetches packaged assets only, not {url[:80]!r}")
            body, media_type = asset_bytes(rest.lstrip("/"))
            return URLFetcherResponse(url, body=body, headers={"Content-Type": media_type})

    return AssetFetcher


def url_fetcher() -> Any:
    """A WeasyPrint URL fetcher for the report's assets only."""
    return _fetcher_class()()


# --------------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------------


class _ProgressHandler(logging.Handler):
    """Turns WeasyPrint's progress messages into calls of the current thread's callback."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        callback: Callable[[str, float], None] | None = getattr(self.local, "callback", None)
        if callback is None:
            return
        match = _STEP.match(record.getMessage())
        if match:
            step, label = int(match[1]), match[2]
            callback(f"PDF: {label.lower()}", 0.1 + 0.85 * (step - 1) / _STEPS)


_handler: _ProgressHandler | None = None


def _progress_handler() -> _ProgressHandler:
    """WeasyPrint's progress logger, consumed here and kept from logging anywhere else."""
    global _handler
    with _lock:
        if _handler is None:
            # Set up before WeasyPrint is imported: its import already reports steps (the
            # user-agent stylesheets it parses).
            logger = logging.getLogger("weasyprint.progress")
            _handler = _ProgressHandler()
            logger.addHandler(_handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        return _handler


@contextmanager
def _progress_to(progress: Progress | None) -> Any:
    handler = _progress_handler()
    handler.local.callback = progress
    try:
        yield
    finally:
        handler.local.callback = None


def _open_in_bookmarks_panel(_document: Any, pdf: Any) -> None:
    """WeasyPrint's finisher hook: the catalog's page mode shows the outline on opening."""
    pdf.catalog["PageMode"] = "/UseOutlines"


def _weasyprint() -> Any:
    """WeasyPrint, imported on first use. Its import warns when the system lacks the
    HarfBuzz-Subset library; the report embeds whole fonts and never subsets them."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="HarfBuzz-Subset will be required", category=DeprecationWarning
        )
        import weasyprint
    return weasyprint


def html_to_pdf(html: str, *, progress: Progress | None = None) -> bytes:
    _progress_handler()
    HTML = _weasyprint().HTML  # noqa: N806 - WeasyPrint's class
    with _progress_to(progress):
        document = HTML(string=html, base_url=BASE_URL, url_fetcher=url_fetcher()).render(
            pdf_variant="pdf/a-2b", output_intent=OUTPUT_INTENT
        )
        try:
            # Whole fonts are embedded (full_fonts): a subset would need HarfBuzz-Subset, a
            # system library WeasyPrint otherwise replaces by fontTools with a warning. The
            # output intent is the stylesheet's sRGB profile, fetched like any asset (WeasyPrint's
            # own "srgb" leaves its profile's file open).
            pdf: bytes = document.write_pdf(
                pdf_variant="pdf/a-2b",
                output_intent=OUTPUT_INTENT,
                full_fonts=True,
                finisher=_open_in_bookmarks_panel,
            )
        finally:
            # A laid-out document holds every page's boxes: freed before the next render.
            del document
    if progress:
        progress("PDF ready", 1.0)
    return pdf
