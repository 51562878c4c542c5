"""One small example trial per database, built through the platform's services, reported twice:
the blinded progress report before the database lock, the final report after the lock and the
unblinding. Both PDFs (and what WeasyPrint logged while making them) are kept for the tests.

The trial lives in a database of its own (its data are committed, unlike the rolled-back
transactions of the other tests, whose example trial has the same code).
"""

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from reports import ReportContext, build_context, render_html, render_pdf
from tests.conftest import (
    EXAMPLE_TRIAL,
    create_database,
    drop_database,
    site_and_user_makers,
)
from tests.conftest import set_up_example_trial as set_up
from trials.analyses import unblinding
from trials.core import migrate
from trials.core.audit import services as audit
from trials.core.db import make_engine
from trials.core.errors import Conflict
from trials.dblock import services as dblock
from trials.simulate import services as simulation

CODE = EXAMPLE_TRIAL
ARMS = ("CBT", "ATTN", "WAIT")
PARTICIPANTS = 60
SEED = 7
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "stat": "stella:statistician_unblinded:TRIAL",
    "blind": "blake:statistician_blinded:TRIAL",
    "coordinator": "cora:coordinator:TRIAL:LDS",
}


class Captured(logging.Handler):
    """Every record of the `weasyprint` logger except its progress child (consumed by the
    report), at every level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("weasyprint.progress"):
            self.records.append(record)


class capture_weasyprint:  # noqa: N801 - used as a context manager, like a function
    def __enter__(self) -> Captured:
        self.logger = logging.getLogger("weasyprint")
        self.handler = Captured()
        self.level = self.logger.level
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        return self.handler

    def __exit__(self, *_exc: Any) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


@dataclass(frozen=True)
class PageText:
    """What pdfminer finds on a page: its lines of text and every character's size and box."""

    number: int
    lines: list[str]
    chars: list[tuple[str, float, float, float, float, float]]  # text, size, x0, y0, x1, y1

    @property
    def text(self) -> str:
        """The page's text with every run of white space made one space."""
        return " ".join(" ".join(self.lines).split())

    @property
    def rows(self) -> list[str]:
        """The characters on each baseline, left to right, top to bottom (a row of a table or
        of the table of contents, whatever boxes pdfminer groups its parts into)."""
        by_line: dict[int, list[tuple[float, str]]] = {}
        for text, _size, x0, y0, _x1, _y1 in self.chars:
            by_line.setdefault(round(y0), []).append((x0, text))
        return ["".join(t for _x, t in sorted(chars)) for _y, chars in sorted(by_line.items(), reverse=True)]


def page_texts(pdf: bytes, *, last_only: bool = False) -> list[PageText]:
    """Every page's text, or the last page's only."""
    import pikepdf
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar, LTTextLine

    def walk(item: Any, page: PageText) -> None:
        if isinstance(item, LTTextLine):
            page.lines.append(item.get_text().strip())
        if isinstance(item, LTChar):
            # pdfminer's size is the box's height; text turned a quarter (the CONSORT diagram's
            # stage labels) has its font size across the box instead.
            a, b, c, d, _e, _f = item.matrix
            size = item.width if abs(a) < 1e-9 and abs(d) < 1e-9 and b * c != 0 else item.size
            page.chars.append((item.get_text(), size, item.x0, item.y0, item.x1, item.y1))
            return
        if hasattr(item, "__iter__"):
            for child in item:
                walk(child, page)

    with pikepdf.open(io.BytesIO(pdf)) as document:
        count = len(document.pages)
    numbers = [count - 1] if last_only else list(range(count))
    pages = []
    for number, layout in zip(numbers, extract_pages(io.BytesIO(pdf), page_numbers=numbers), strict=True):
        page = PageText(number + 1, [], [])
        walk(layout, page)
        pages.append(page)
    return pages


@dataclass
class Rendered:
    context: ReportContext
    html: str
    pdf: bytes
    logged: list[logging.LogRecord]
    progress: list[tuple[str, float]] = field(default_factory=list)
    built: list[tuple[str, float]] = field(default_factory=list)
    _pages: list[PageText] | None = None

    def pikepdf(self) -> Any:
        import pikepdf

        return pikepdf.open(io.BytesIO(self.pdf))

    @property
    def pages(self) -> list[PageText]:
        if self._pages is None:
            self._pages = page_texts(self.pdf)
        return self._pages

    @property
    def text(self) -> str:
        return " ".join(page.text for page in self.pages)


@dataclass
class ReportTrial:
    url: str
    engine: Engine
    blinded: Rendered
    final: Rendered
    refused_before_lock: str
    refused_before_unblinding: str


def render(context: ReportContext) -> Rendered:
    progress: list[tuple[str, float]] = []
    with capture_weasyprint() as captured:
        pdf = render_pdf(context, progress=lambda label, fraction: progress.append((label, fraction)))
    return Rendered(context, render_html(context), pdf, captured.records, progress)


def people_of(session: Session) -> dict[str, Any]:
    make_site, make_user = site_and_user_makers(session)

    return set_up(session, make_site, make_user, STAFF)


@pytest.fixture(scope="session")
def report_trial(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReportTrial]:
    url = create_database(backend, tmp_path_factory.mktemp("reports"))
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        with Session(engine, expire_on_commit=False) as session:
            audit.set_actor(session, audit.Actor.system("system"))
            people = people_of(session)
            simulation.simulate(CODE, participants_wanted=PARTICIPANTS, seed=SEED, session=session)
            session.commit()
            stat = people["stat"]
            with pytest.raises(Conflict) as before_lock:
                build_context(CODE, session=session, by=stat, variant="final")
            blinded = render(build_context(CODE, session=session, by=people["blind"], variant="blinded"))
            dblock.lock_database(
                CODE, reason="all data queries closed", session=session, by=people["sponsor"]
            )
            with pytest.raises(Conflict) as before_unblinding:
                build_context(CODE, session=session, by=stat, variant="final")
            unblinding.unblind_trial(CODE, reason="final analysis per the SAP", session=session, by=stat)
            session.commit()
            built: list[tuple[str, float]] = []
            final = render(
                build_context(
                    CODE, session=session, by=stat, variant="final", progress=lambda *step: built.append(step)
                )
            )
            final.built = built
            session.commit()
        yield ReportTrial(
            url,
            engine,
            blinded,
            final,
            before_lock.value.detail,
            before_unblinding.value.detail,
        )
    finally:
        engine.dispose()
        drop_database(url)
