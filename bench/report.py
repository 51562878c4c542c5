"""Time the evidence report of the example trial at 1,000 and 10,000 participants.

Run: .venv/bin/python bench/report.py [participants ...]   (default 1000 10000)

For each size, a SQLite database of its own (under a temporary folder) gets the example trial
played to its end through the platform's services, as `trials demo` does: protocol, conduct
simulated through the services, database lock, unblinding. Then, for the final report:

- build: `build_context` (read the snapshot, run the analysis plan, derive the tables, draw
  the figures);
- html: `render_html` (Jinja);
- pdf: `html_to_pdf` (our pipeline: packaged-assets fetcher, PDF/A-2b, bookmarks panel);
- bare: WeasyPrint's plain `HTML(string=...).write_pdf()` of the same HTML with the same
  fetcher (fonts and CSS must load) and no PDF/A variant or finisher: the cost of WeasyPrint
  itself;

with pages, PDF size and the time to set the trial up (not part of the report). Figures print;
nothing is asserted.
"""

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(sizes: list[int]) -> None:
    import weasyprint

    from reports import render
    from reports.build import build_context, html_to_pdf, render_html
    from trials import create_app
    from trials.core import migrate
    from trials.core.accounts import services as accounts
    from trials.core.db import db
    from trials.demo import run_demo

    print(f"{'participants':>12} {'setup s':>9} {'build s':>8} {'html s':>7} {'pdf s':>7} {'bare s':>7} "
          f"{'pages':>6} {'MB':>6} {'s/page':>7}")  # fmt: skip
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.sqlite"
            migrate.upgrade(url)
            app = create_app({"ENV": "testing", "DATABASE_URL": url, "SECRET_KEY": "bench"})
            with app.app_context():
                start = time.perf_counter()
                run_demo(participants=n, seed=20261126, out_dir=Path(tmp) / "out", in_progress=True)
                from trials.demo import _close_and_unblind

                _close_and_unblind("MOOD-CBT-01")
                setup = time.perf_counter() - start
                with db.snapshot() as session:
                    principal = accounts.load_principal(
                        accounts.get_user("statistician", session=session), session=session
                    )
                    start = time.perf_counter()
                    context = build_context("MOOD-CBT-01", session=session, by=principal, variant="final")
                    build = time.perf_counter() - start
            start = time.perf_counter()
            html = render_html(context)
            html_s = time.perf_counter() - start
            gc.collect()
            start = time.perf_counter()
            pdf = html_to_pdf(html)
            pdf_s = time.perf_counter() - start
            gc.collect()
            start = time.perf_counter()
            document = weasyprint.HTML(
                string=html, base_url=render.BASE_URL, url_fetcher=render.url_fetcher()
            ).render()
            pages = len(document.pages)
            document.write_pdf()
            bare = time.perf_counter() - start
            del document
            gc.collect()
            app.extensions["trials_db"].engine.dispose()
            print(
                f"{n:>12,} {setup:>9.1f} {build:>8.1f} {html_s:>7.2f} {pdf_s:>7.1f} {bare:>7.1f} "
                f"{pages:>6} {len(pdf) / 1e6:>6.2f} {pdf_s / pages:>7.3f}"
            )
    print(f"(cpu count {os.cpu_count()}; SQLite; setup = the trial played through the services)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
