"""Configuration: defaults, then `TRIALS_*` environment variables, then the test mapping."""

import base64
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
        # The largest request body accepted, in MiB (a CSV import upload is the largest);
        # a larger one is refused with 413 before it is read. MAX_CONTENT_LENGTH, in bytes,
        # overrides it when set.
        "MAX_UPLOAD_MB": 16,
        # Rate limits per client address, in the notation "N per second|minute|hour|day"
        # joined by ";". Sign-in and password re-entry for a signature (POST), counted per
        # route; a self-report link page (every request).
        "SIGN_IN_RATE_LIMIT": "20 per minute; 200 per hour",
        "EPRO_RATE_LIMIT": "30 per minute; 300 per hour",
        # None: on, except when ENV is 'testing' (tests that check the limits turn them on).
        "RATELIMIT_ENABLED": None,
        # Where the counters live: memory:// counts within one process; several processes or
        # hosts must share redis://. None: REDIS_URL when it is set, else memory://.
        "RATELIMIT_STORAGE_URL": None,
        # How many proxies in front of the app append to X-Forwarded-For; 0 believes none and
        # takes the address of the connection as the client's.
        "TRUSTED_PROXIES": 0,
        "API_TOKEN_DEFAULT_DAYS": 90,
        # The SMTP server that `trials outbox send` relays queued e-mail to.
        "SMTP_HOST": None,
        "SMTP_PORT": 25,
        "SMTP_SENDER": "trials@localhost",
        "SMTP_SECURITY": "none",  # none | starttls | tls
        "SMTP_USERNAME": None,
        "SMTP_PASSWORD": None,
        # Fernet keys that encrypt participants' direct identifiers, comma-separated: the first
        # encrypts, every one decrypts (add a new key first to rotate). None: identifiers
        # cannot be entered.
        "IDENTIFIER_KEYS": None,
        # A participant's self-report link (ePRO) expires this many hours after it is issued.
        "EPRO_LINK_HOURS": 72,
        # Report jobs run on an RQ worker (`trials worker`) when a Redis URL is set, else on a
        # background thread of the web process. `REDIS_URL` in the environment is read too.
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
    }


def identifier_keys(config: Any) -> list[str]:
    """The configured identifier keys, first (encrypting) key first; empty when none is set.

    Accepts the comma-separated text of `TRIALS_IDENTIFIER_KEYS` or a list of keys.
    """
    value = config.get("IDENTIFIER_KEYS")
    if not value:
        return []
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [str(part).strip() for part in parts if str(part).strip()]


def _check_identifier_keys(config: Any) -> None:
    for number, key in enumerate(identifier_keys(config), start=1):
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise ConfigurationError(
                f"IDENTIFIER_KEYS: key {number} is not a Fernet key (32 url-safe base64-encoded bytes)"
            )


def _whole_number(config: Any, key: str, low: int, high: int) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"{key} must be a whole number from {low} to {high}")
    return value


def _check_limits(config: dict[str, Any]) -> None:
    """Request size and rate limits; fills in MAX_CONTENT_LENGTH and RATELIMIT_ENABLED."""
    from limits import parse_many

    megabytes = _whole_number(config, "MAX_UPLOAD_MB", 1, 1024)
    if config.get("MAX_CONTENT_LENGTH") is None:
        config["MAX_CONTENT_LENGTH"] = megabytes * 1024 * 1024
    _whole_number(config, "TRUSTED_PROXIES", 0, 10)
    for key in ("SIGN_IN_RATE_LIMIT", "EPRO_RATE_LIMIT"):
        try:
            parse_many(str(config.get(key) or ""))
        except ValueError as exc:
            raise ConfigurationError(f"{key} must be a rate such as '20 per minute; 200 per hour'") from exc
    enabled = config.get("RATELIMIT_ENABLED")
    if enabled is None:
        config["RATELIMIT_ENABLED"] = config.get("ENV") != "testing"
    elif not isinstance(enabled, bool):
        raise ConfigurationError("RATELIMIT_ENABLED must be true or false")


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
    _check_identifier_keys(config)
    hours = config.get("EPRO_LINK_HOURS")
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 24 * 30:
        raise ConfigurationError("EPRO_LINK_HOURS must be a whole number of hours from 1 to 720")
    _check_limits(config)
    if relaxed and not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = os.urandom(32).hex()
