"""The trial dashboard page: enrolment over time by site (a server-drawn SVG and its table),
randomized counts, data completeness by visit, overdue visits, open data queries and safety
events; counts by arm only for readers who may see the allocation."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, g, render_template

from trials.core.accounts.auth import login_required
from trials.core.accounts.permissions import Permission, Principal
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.dashboard.reads import Dashboard, dashboard
from trials.participants.services import trial_by_code

bp = Blueprint("dashboard", __name__, template_folder="templates", url_prefix="/trials")

# Line colours of the enrolment chart, one per site in protocol order (repeating).
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
WIDTH, HEIGHT, MARGIN = 600, 240, 36


@dataclass(frozen=True)
class Line:
    site_code: str
    colour: str
    points: str  # an SVG polyline's points
    last: int


@dataclass(frozen=True)
class Chart:
    """The cumulative enrolment by site, scaled into a WIDTH x HEIGHT view box."""

    lines: tuple[Line, ...]
    y_max: int
    first_month: str
    last_month: str


def chart_of(board: Dashboard) -> Chart | None:
    points = board.enrolment
    if not points:
        return None
    y_max = max(1, *(n for p in points for n in p.by_site))
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    step = plot_w / max(1, len(points) - 1)
    lines = []
    for i, site in enumerate(board.sites):
        coordinates = " ".join(
            f"{MARGIN + k * step:.1f},{MARGIN + plot_h - plot_h * p.by_site[i] / y_max:.1f}"
            for k, p in enumerate(points)
        )
        lines.append(Line(site, PALETTE[i % len(PALETTE)], coordinates, points[-1].by_site[i]))
    return Chart(tuple(lines), y_max, points[0].month, points[-1].month)


@bp.get("/<code>/dashboard")
@login_required
def index(code: str) -> Any:
    principal: Principal = g.principal
    board = dashboard(code, session=db.session, by=principal, today=today(), now=datetime.now(UTC))
    if board is None:
        trial = trial_by_code(code, session=db.session)
        return render_template("dashboard/not_started.html", trial=trial)
    trial_id = board.trial.id
    return render_template(
        "dashboard/index.html",
        board=board,
        chart=chart_of(board),
        size={"width": WIDTH, "height": HEIGHT, "margin": MARGIN},
        can_lock=principal.grant_for(Permission.LOCK_DATABASE, trial_id=trial_id) is not None,
        can_unblind=principal.grant_for(Permission.UNBLIND_TRIAL, trial_id=trial_id) is not None,
        can_report=principal.grant_for(Permission.VIEW_RESULTS, trial_id=trial_id) is not None,
    )
