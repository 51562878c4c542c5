"""Where a report job runs: in the app's own process (inline, the default) or on an RQ worker
when `REDIS_URL` is set (`trials worker` runs one).

Inline jobs run on a background thread of the process that queued them, with an app context of
their own; the request that asked for the report answers at once and the page follows the job's
progress. Either way the job's state lives in the database (`report_job`), so any web process can
show it.
"""

import threading
import uuid

from flask import Flask, current_app

from reports.models import ReportJob

QUEUE = "trials-reports"
# A report of a large trial renders for minutes; RQ's default timeout (180 s) is too short.
JOB_TIMEOUT_SECONDS = 60 * 60


def runner_name(app: Flask | None = None) -> str:
    return "rq" if (app or current_app).config.get("REDIS_URL") else "inline"


def redis_connection(url: str):  # type: ignore[no-untyped-def]
    from redis import Redis

    return Redis.from_url(url)


def start(job: ReportJob) -> bool:
    """Start the job (after the transaction that created it has committed); False, with the job
    failed and its error recorded, when the queue cannot be reached."""
    from reports.services import could_not_start

    try:
        submit(job)
    except Exception as exc:  # Redis down or refusing: the job must not stay queued for ever
        could_not_start(job.id, exc)
        return False
    return True


def submit(job: ReportJob) -> None:
    """Hand the job to its runner."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if job.runner == "rq":
        from rq import Queue

        queue = Queue(QUEUE, connection=redis_connection(app.config["REDIS_URL"]))
        queue.enqueue(run_queued, str(job.id), job_timeout=JOB_TIMEOUT_SECONDS, job_id=f"report-{job.id}")
        return
    thread = threading.Thread(target=_run_inline, args=(app, job.id), name=f"report-{job.id}", daemon=True)
    app.extensions.setdefault("report_threads", []).append(thread)
    thread.start()


def _run_inline(app: Flask, job_id: uuid.UUID) -> None:
    from reports.services import run_job

    try:
        with app.app_context():
            run_job(job_id)
    finally:
        threads: list[threading.Thread] = app.extensions.get("report_threads", [])
        if threading.current_thread() in threads:
            threads.remove(threading.current_thread())


def run_queued(job_id: str) -> None:
    """What the RQ worker runs (inside the app context `trials worker` provides)."""
    from reports.services import run_job

    run_job(uuid.UUID(job_id))


def wait_inline(app: Flask, timeout: float | None = None) -> None:
    """Wait for this process's inline jobs to finish (the command line and tests)."""
    for thread in list(app.extensions.get("report_threads", [])):
        thread.join(timeout)


def work(app: Flask, *, burst: bool) -> bool:
    """Run an RQ worker on the report queue in this process (one job at a time, no fork: the
    database engine's connections are not shared with a child)."""
    from rq import SimpleWorker

    with app.app_context():
        connection = redis_connection(app.config["REDIS_URL"])
        from rq import Queue

        worker = SimpleWorker([Queue(QUEUE, connection=connection)], connection=connection)
        return bool(worker.work(burst=burst))
