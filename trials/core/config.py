"""Configuration: defaults, then `TRIALS_*` environment variables, then the test mapping."""

import os
from datetime import timedelta
from typing import Any

ENVIRONMENTS = ("production", "development", "testing")


class ConfigurationError(RuntimeError):
    """The application was configured in a way it refuses to run with."""


def default_config(instance_path: str) -> dict[str, Any]:
    """Defaults; every key can be overridden by a `TRIALS_<KEY>` environment variable."""
    return {
        # production | development | testing. Only development and testing may run without
        # a SECRET_KEY or with the debugger.
        "ENV": "production",
        "SECRET_KEY": None,
        "DATABASE_URL": "sqlite:///" + os.path.join(instance_path, "trials.sqlite"),
        # Session cookies: secure, HttpOnly, SameSite. Browsers treat http://127.0.0.1 and
        # http://localhost as secure contexts, so the demo works over plain HTTP locally.
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "trials_session",
        "REMEMBER_COOKIE_SECURE": True,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
        # Signed-in web sessions end after this many minutes without a request.
        "SESSION_IDLE_MINUTES": 30,
        # The Nth consecutive wrong password locks the account (DOMAIN.md section 6).
        "LOCKOUT_THRESHOLD": 6,
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        "API_TOKEN_DEFAULT_DAYS": 90,
        # The SMTP server that `trials outbox send` relays queued e-mail to.
        "SMTP_HOST": None,
        "SMTP_PORT": 25,
        "SMTP_SENDER": "trials@localhost",
        "SMTP_SECURITY": "none",  # none | starttls | tls
        "SMTP_USERNAME": None,
        "SMTP_PASSWORD": None,
    }


def validate_config(config: dict[str, Any], *, debug: bool) -> None:
    """Refuse configurations that are unsafe outside development and testing."""
    env = config.get("ENV")
    if env not in ENVIRONMENTS:
        raise ConfigurationError(f"ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    relaxed = env in ("development", "testing")
    if not relaxed and not config.get("SECRET_KEY"):
        raise ConfigurationError(
            "SECRET_KEY is required outside development and testing: set TRIALS_SECRET_KEY in the environment"
        )
    if not relaxed and debug:
        raise ConfigurationError("the debugger is allowed only when ENV is 'development'")
    if relaxed and not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = os.urandom(32).hex()
