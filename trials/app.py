"""The application factory (ARCHITECTURE.md convention 1)."""

import os
from typing import Any

from flask import Flask

from trials.core.config import default_config, validate_config


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then `TRIALS_*` environment variables, then `test_config`."""
    app = Flask("trials", instance_relative_config=True)
    app.config.from_mapping(default_config(app.instance_path))
    app.config.from_prefixed_env("TRIALS")
    if test_config is not None:
        app.config.from_mapping(test_config)
    validate_config(app.config, debug=app.debug)
    os.makedirs(app.instance_path, exist_ok=True)

    from trials.core import security
    from trials.core.accounts import auth, ratelimit, services
    from trials.core.accounts.permissions import Permission
    from trials.core.db import db
    from trials.core.error_handlers import register_error_handlers
    from trials.core.forms import beside

    db.init_app(app)
    auth.init_app(app)
    security.init_app(app)
    register_error_handlers(app)
    hashing = app.config.get("PASSWORD_HASHING")
    if hashing:
        services.configure_password_hashing(**hashing)
    app.jinja_env.globals["Permission"] = Permission
    app.add_template_filter(beside)

    from protocols import api as protocols_api
    from protocols import views as protocols_views
    from reports import api as reports_api
    from reports import views as reports_views
    from trials.analyses import api as analyses_api
    from trials.analyses import views as analyses_views
    from trials.assessments import api as assessments_api
    from trials.assessments import views as assessments_views
    from trials.core import api
    from trials.core.accounts import api as accounts_api
    from trials.core.accounts import views as accounts_views
    from trials.core.audit import views as audit_views
    from trials.dashboard import views as dashboard_views
    from trials.dashboard.tasks import home_tasks
    from trials.dblock import api as dblock_api
    from trials.dblock import views as dblock_views
    from trials.engagement import api as engagement_api
    from trials.epro import api as epro_api
    from trials.epro import views as epro_views
    from trials.events import api as events_api
    from trials.events import views as events_views
    from trials.imports import api as imports_api
    from trials.imports import views as imports_views
    from trials.participants import api as participants_api
    from trials.participants import views as participants_views
    from trials.randomization import api as randomization_api
    from trials.randomization import views as randomization_views
    from trials.randomization.reads import participant_reads
    from trials.safety import api as safety_api
    from trials.safety import views as safety_views

    for blueprint in (
        accounts_views.bp,
        audit_views.bp,
        protocols_views.bp,
        imports_views.bp,
        api.bp,
        accounts_api.bp,
        audit_views.api_bp,
        protocols_api.bp,
        participants_api.bp,
        randomization_api.bp,
        assessments_api.bp,
        safety_api.bp,
        dblock_api.bp,
        analyses_api.bp,
        assessments_views.bp,
        epro_views.bp,
        epro_api.bp,
        events_api.bp,
        events_views.bp,
        randomization_views.bp,
        engagement_api.bp,
        imports_api.bp,
        reports_views.bp,
        reports_api.bp,
        safety_views.bp,
        dblock_views.bp,
        analyses_views.bp,
        dashboard_views.bp,
    ):
        app.register_blueprint(blueprint)
    # The participant pages show what the packages above participants add: randomization
    # (the arm for unblinded roles only; the randomize action), then the schedule and
    # assessments, then self-report, then adverse events and disposition.
    participants_views.init_app(
        app,
        reads=participant_reads,
        sections=(
            randomization_views.participant_section,
            assessments_views.participant_section,
            safety_views.participant_section,
            epro_views.participant_section,
            events_views.participant_section,
        ),
    )
    # The home page's "needs your attention" list, counted as the dashboard counts.
    accounts_views.set_task_provider(app, home_tasks)
    # Rate limits on the routes that take a password or a self-report link's token.
    ratelimit.init_app(app)
    return app
