"""Audit trail figures: entries appended per second through the ORM mechanism and through the
bulk path, and entries verified per second by `verify_chain`.

Run: .venv/bin/python bench/audit_chain.py [DATABASE_URL] [rows]
(default: a temporary SQLite file and 2,000 rows; each site row writes 5 entries)
"""

import sys
import tempfile
import time
import uuid

from sqlmodel import Session

from trials.core import migrate
from trials.core.accounts.models import Site
from trials.core.audit import services as audit
from trials.core.db import make_engine


def main(url: str, rows: int) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    actor = audit.Actor(None, "bench", "Bench", "admin", "system")
    with Session(engine) as session:
        audit.set_actor(session, actor)
        start = time.perf_counter()
        for i in range(rows):
            session.add(Site(code=f"O{uuid.uuid4().hex[:12].upper()}", name=f"site {i}", country="GB"))
            if i % 100 == 99:
                session.flush()
        session.commit()
        orm = time.perf_counter() - start
    with Session(engine) as session:
        audit.set_actor(session, actor)
        data = [
            Site(code=f"B{uuid.uuid4().hex[:12].upper()}", name=f"bulk {i}", country="GB").model_dump()
            for i in range(rows)
        ]
        start = time.perf_counter()
        audit.bulk_insert(session, Site, data)
        session.commit()
        bulk = time.perf_counter() - start
    with engine.connect() as conn:
        start = time.perf_counter()
        report = audit.verify_chain(conn)
        verify = time.perf_counter() - start
    engine.dispose()
    entries = rows * 5
    print(f"{engine.dialect.name}: {rows} rows = {entries} entries each way")
    print(f"  ORM flushes of 100:  {orm:.2f} s  ({entries / orm:,.0f} entries/s)")
    print(f"  bulk_insert:         {bulk:.2f} s  ({entries / bulk:,.0f} entries/s)")
    print(
        f"  verify_chain:        {verify:.2f} s for {report.entries_checked} entries "
        f"({report.entries_checked / verify:,.0f} entries/s), ok={report.ok}"
    )


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite"
    main(target, int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
