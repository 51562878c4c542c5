"""The home page's "needs your attention" list for a trial, by the reader's roles: safety events
to follow up for the site's staff, overdue visits and open data queries for those who enter or
monitor data. Counts come from the dashboard's reads, so they are scoped as the dashboard is (a
coordinator's to their sites) and never carry an arm."""

from datetime import UTC, datetime

from flask import url_for
from sqlmodel import Session

from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.views import Task
from trials.core.db import utctoday
from trials.dashboard.reads import dashboard


def home_tasks(trial: Trial, *, session: Session, by: Principal) -> list[Task]:
    if by.grant_for(Permission.VIEW_TRIAL, trial_id=trial.id) is None:
        return []
    board = dashboard(trial.code, session=session, by=by, today=utctoday(), now=datetime.now(UTC))
    if board is None:
        return []

    def may(permission: Permission) -> bool:
        return by.grant_for(permission, trial_id=trial.id) is not None

    site_staff = may(Permission.ENTER_DATA) or may(Permission.FOLLOW_UP_SAFETY)
    data_roles = may(Permission.ENTER_DATA) or may(Permission.VIEW_AUDIT)
    tasks = []
    if site_staff and board.open_safety_events:
        overdue = board.overdue_safety_events
        text = "safety events to follow up" + (f" ({overdue} overdue)" if overdue else "")
        tasks.append(
            Task(
                text,
                board.open_safety_events,
                url_for("safety.index", code=trial.code, show="overdue" if overdue else "open"),
                urgent=overdue > 0,
            )
        )
    if data_roles and board.overdue_visits:
        url = url_for("dashboard.index", code=trial.code, _anchor="overdue")
        tasks.append(Task("overdue visits (window closed, questionnaire missing)", board.overdue_visits, url))
    if data_roles and board.open_queries:
        url = url_for("dashboard.index", code=trial.code, _anchor="status")
        tasks.append(Task("open data queries", board.open_queries, url))
    return tasks
