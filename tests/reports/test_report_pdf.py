"""The report PDFs follow the rules for PDFs sent to regulators (DOMAIN.md section 4), checked
on the example trial's blinded and final reports with pikepdf and pdfminer."""

import re
from typing import Any

import pikepdf
import pytest

from reports.render import headings
from tests.reports.conftest import Rendered, ReportTrial

LETTER = [0, 0, 612, 792]
# FDA margins: left 3/4 in, others 3/8 in (points); the stylesheet keeps wider ones.
LEFT, RIGHT, BOTTOM, TOP = 54, 612 - 27, 27, 792 - 27


@pytest.fixture(params=["blinded", "final"])
def rendered(request: pytest.FixtureRequest, report_trial: ReportTrial) -> Rendered:
    return getattr(report_trial, request.param)  # type: ignore[no-any-return]


def outline_titles(pdf: pikepdf.Pdf) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    with pdf.open_outline() as outline:

        def walk(items: Any, level: int) -> None:
            for item in items:
                out.append((level, str(item.title)))
                walk(item.children, level + 1)

        walk(outline.root, 1)
    return out


def test_the_bookmarks_mirror_the_headings_and_open_in_the_bookmarks_panel(rendered: Rendered) -> None:
    pdf = rendered.pikepdf()
    found = [(h["level"], h["text"]) for h in headings(rendered.html)]
    assert len(found) > 4
    assert outline_titles(pdf) == found
    assert pdf.Root.PageMode == pikepdf.Name.UseOutlines


def test_every_font_is_embedded(rendered: Rendered) -> None:
    import hashlib
    from pathlib import Path

    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    packaged = {
        hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf")
    }
    pdf = rendered.pikepdf()
    fonts = [o for o in pdf.objects if isinstance(o, pikepdf.Dictionary) and o.get("/Type") == "/Font"]
    assert fonts
    for font in fonts:
        assert font.Subtype != "/Type3"
        descendants = font.DescendantFonts if font.Subtype == "/Type0" else [font]
        for d in descendants:
            descriptor = d.FontDescriptor
            assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), str(d.BaseFont)
            # The stylesheet's DejaVu Sans faces only, embedded whole: no system font stood in.
            assert "+Report-Sans" in str(descriptor.FontName), str(descriptor.FontName)
            program = descriptor.get("/FontFile2")
            assert program is not None
            assert hashlib.sha256(program.read_bytes()).hexdigest() in packaged


def test_no_encryption_javascript_attachments_or_annotations_other_than_links(rendered: Rendered) -> None:
    pdf = rendered.pikepdf()
    assert not pdf.is_encrypted
    root = pdf.Root
    names = root.get("/Names", pikepdf.Dictionary())
    assert "/JavaScript" not in names
    assert "/EmbeddedFiles" not in names
    assert "/AcroForm" not in root
    assert "/AA" not in root
    if "/OpenAction" in root:
        action = root.OpenAction
        assert not (isinstance(action, pikepdf.Dictionary) and action.get("/S") == "/JavaScript")
    links = 0
    for obj in pdf.objects:
        if not isinstance(obj, pikepdf.Dictionary):
            continue
        assert "/JS" not in obj
        assert "/AA" not in obj
        assert obj.get("/S") not in ("/JavaScript", "/Launch", "/ImportData")
        assert obj.get("/Type") != "/Filespec"
        assert obj.get("/Type") != "/EmbeddedFile"
    for page in pdf.pages:
        for annotation in page.get("/Annots", []):
            assert annotation.Subtype == "/Link"
            links += 1
    assert links >= len(headings(rendered.html))  # the table of contents links every heading


def test_pdfa_2b_metadata_and_letter_pages(rendered: Rendered) -> None:
    pdf = rendered.pikepdf()
    with pdf.open_metadata() as meta:
        assert meta["pdfaid:part"] == "2"
        assert meta["pdfaid:conformance"] == "B"
        assert meta["dc:title"] == rendered.context.title
        assert "Northbridge Digital Therapeutics Ltd" in str(meta["dc:creator"])
    assert pdf.pdf_version >= "1.4"
    assert len(pdf.pages) > 3
    for page in pdf.pages:
        assert [float(v) for v in page.MediaBox] == LETTER


def test_every_character_is_9_pt_or_more_and_inside_the_margins(rendered: Rendered) -> None:
    checked = 0
    for page in rendered.pages:
        for text, size, x0, y0, x1, y1 in page.chars:
            checked += 1
            where = f"page {page.number}: {text!r} at ({x0:.1f}, {y0:.1f})"
            assert size >= 8.95, f"{where} is {size:.2f} pt"
            assert x0 >= LEFT, where
            assert x1 <= RIGHT, where
            assert y0 >= BOTTOM, where
            assert y1 <= TOP, where
    assert checked > 1000


def test_rendering_logs_nothing_on_the_weasyprint_logger(rendered: Rendered) -> None:
    assert [f"{r.levelname}: {r.getMessage()}" for r in rendered.logged] == []
    # The progress steps went to the callback instead.
    fractions = [f for _label, f in rendered.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert any(label.startswith("PDF: creating layout") for label, _f in rendered.progress)


def test_the_table_of_contents_gives_the_page_of_each_heading(report_trial: ReportTrial) -> None:
    rendered = report_trial.final
    pdf = rendered.pikepdf()
    page_of = {page.objgen: number for number, page in enumerate(pdf.pages, start=1)}
    with pdf.open_outline() as outline:
        destinations = {}

        def walk(items: Any) -> None:
            for item in items:
                destinations[str(item.title)] = page_of[item.destination[0].objgen]
                walk(item.children)

        walk(outline.root)
    entry = re.compile(r"^(?P<title>.+?)\s*\.{2,}[\s.]*(?P<page>\d+)$")
    printed = {}
    for page in rendered.pages[1:4]:
        for line in page.rows:
            match = entry.match(line)
            if match:
                printed[" ".join(match["title"].split())] = int(match["page"])
    toc = [h["text"] for h in headings(rendered.html) if h["text"] != "Contents"]
    assert set(printed) == set(toc)
    for title in toc:
        assert printed[title] == destinations[title], title
        assert title in rendered.pages[printed[title] - 1].text
