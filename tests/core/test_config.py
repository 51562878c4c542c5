"""Configuration: prefixed environment variables, refusal of unsafe production settings."""

from typing import Any

import pytest

from trials import create_app
from trials.core.config import ConfigurationError


def test_production_refuses_to_start_without_a_secret_key(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIALS_SECRET_KEY", raising=False)
    monkeypatch.setenv("TRIALS_DATABASE_URL", f"sqlite:///{tmp_path}/x.sqlite")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app()


def test_prefixed_environment_variables_configure_the_app(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIALS_SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("TRIALS_DATABASE_URL", f"sqlite:///{tmp_path}/env.sqlite")
    monkeypatch.setenv("TRIALS_SESSION_IDLE_MINUTES", "15")
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert app.config["SESSION_IDLE_MINUTES"] == 15
    assert app.config["DATABASE_URL"].endswith("env.sqlite")
    assert app.config["ENV"] == "production"
    app.extensions["trials_db"].engine.dispose()


def test_the_default_database_is_sqlite_under_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIALS_DATABASE_URL", raising=False)
    app = create_app({"ENV": "testing"})
    assert app.config["DATABASE_URL"] == f"sqlite:///{app.instance_path}/trials.sqlite"
    app.extensions["trials_db"].engine.dispose()


def test_no_debugger_outside_development(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(ConfigurationError, match="debugger"):
        create_app({"SECRET_KEY": "k", "DATABASE_URL": f"sqlite:///{tmp_path}/d.sqlite"})
    app = create_app({"ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path}/d.sqlite"})
    assert app.debug
    app.extensions["trials_db"].engine.dispose()


def test_unknown_environment_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="ENV"):
        create_app({"ENV": "staging", "SECRET_KEY": "k"})


def test_the_command_line_reports_a_refused_configuration_without_a_traceback(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from trials.cli import main

    env = {"TRIALS_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite", "TRIALS_ENV": "production"}
    result = CliRunner().invoke(main, ["audit", "head"], env={**env, "TRIALS_SECRET_KEY": ""})
    assert result.exit_code == 1
    assert "configuration: SECRET_KEY is required" in result.output
    assert "Traceback" not in result.output
