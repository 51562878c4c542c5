"""Time `trials export` (SDTM and ADaM packages) of the example trial at 1,000 participants.

Run: .venv/bin/python bench/export.py [participants ...]   (default 1000)

For each size, a SQLite database of its own gets the example trial played to its end through
the platform's services, as `trials demo` does (protocol, simulated conduct, database lock,
unblinding). Then `export_submission` runs with its progress steps timed: reading the records
and deriving the analysis frames, building SDTM, building ADaM, writing each package (transport
files, CSV copies, define.xml, each file read back) and the conformance check. Prints the
steps, the rows and the bytes written; nothing is asserted.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(sizes: list[int]) -> None:
    from reports.submission.export import export_submission
    from trials import create_app
    from trials.core import migrate
    from trials.core.accounts import services as accounts
    from trials.core.audit import services as audit
    from trials.core.db import db
    from trials.demo import _close_and_unblind, run_demo

    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.sqlite"
            migrate.upgrade(url)
            app = create_app({"ENV": "testing", "DATABASE_URL": url, "SECRET_KEY": "bench"})
            with app.app_context():
                start = time.perf_counter()
                run_demo(participants=n, seed=20261126, out_dir=Path(tmp) / "demo", in_progress=True)
                _close_and_unblind("MOOD-CBT-01")
                setup = time.perf_counter() - start
                steps: list[tuple[str, float]] = []
                with db.transaction() as session:
                    principal = accounts.load_principal(
                        accounts.get_user("statistician", session=session), session=session
                    )
                    audit.set_actor(session, accounts.actor_for(principal, "cli"))
                    start = time.perf_counter()
                    result = export_submission(
                        "MOOD-CBT-01",
                        Path(tmp) / "out",
                        session=session,
                        by=principal,
                        progress=lambda label, _f, steps=steps: steps.append((label, time.perf_counter())),
                    )
                    total = time.perf_counter() - start
            app.extensions["trials_db"].engine.dispose()
            print(f"participants {n:,}: setup through the services {setup:.1f} s; export {total:.1f} s")
            # Each progress step is reported when it starts: its time runs to the next one.
            marks = [("checking the rights and the locks", start), *steps]
            for (label, at), (_next, until) in zip(marks, marks[1:], strict=False):
                print(f"  {label:<34} {until - at:6.2f} s")
            for package in (result.sdtm, result.adam):
                rows = ", ".join(f"{k} {len(v):,}" for k, v in package.frames.items())
                print(f"  {package.folder}: {rows}")
            size = sum(f.size for f in result.files)
            print(f"  {len(result.files)} files, {size / 1e6:.2f} MB; conformance errors {result.errors}")
    print(f"(cpu count {os.cpu_count()}; SQLite)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000])
