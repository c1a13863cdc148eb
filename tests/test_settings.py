"""Settings: defaults, nested channel sections, and bad values named by their variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, describe_errors
from tests.conftest import make_settings


def errors_of(**values: object) -> list[str]:
    with pytest.raises(ValidationError) as info:
        make_settings(**values)
    return describe_errors(info.value)


def test_defaults() -> None:
    settings = make_settings()
    assert settings.database_url == "sqlite+aiosqlite:///var/gateway.db"
    assert settings.timezone == "Asia/Shanghai"
    assert settings.reopen_days == 7
    assert settings.secret_key is not None
    assert "test-secret" not in repr(settings)  # SecretStr never prints


def test_nested_sections_come_from_double_underscore_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "k" * 20)
    monkeypatch.setenv("GATEWAY_TELEGRAM__ENABLED", "true")
    monkeypatch.setenv("GATEWAY_TELEGRAM__MODE", "polling")
    monkeypatch.setenv("GATEWAY_TELEGRAM__TOKEN", "123:abc")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/1")
    settings = Settings(_env_file=None)
    assert settings.telegram.enabled
    assert settings.telegram.token is not None
    assert settings.telegram.token.get_secret_value() == "123:abc"
    assert settings.redis_url == "redis://127.0.0.1:6390/1"


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"database_url": "not a url"}, "GATEWAY_DATABASE_URL"),
        ({"database_url": "mysql://db/x"}, "GATEWAY_DATABASE_URL"),
        ({"redis_url": "http://127.0.0.1"}, "GATEWAY_REDIS_URL"),
        ({"timezone": "Mars/Olympus"}, "GATEWAY_TIMEZONE"),
        ({"port": 70000}, "GATEWAY_PORT"),
        ({"telegram": {"enabled": True}}, "GATEWAY_TELEGRAM__TOKEN"),
        (
            {"telegram": {"enabled": True, "token": "1:a", "mode": "webhook"}},
            "GATEWAY_TELEGRAM__WEBHOOK_SECRET",
        ),
        (
            {"telegram": {"webhook_secret": "not allowed: spaces or colons"}},
            "GATEWAY_TELEGRAM__WEBHOOK_SECRET",
        ),
        ({"telegram": {"webhook_secret": "x" * 257}}, "GATEWAY_TELEGRAM__WEBHOOK_SECRET"),
        (
            {"telegram": {"webhook_max_connections": 101}},
            "GATEWAY_TELEGRAM__WEBHOOK_MAX_CONNECTIONS",
        ),
        ({"telegram": {"max_retry_wait": 600}}, "GATEWAY_TELEGRAM__MAX_RETRY_WAIT"),
        ({"email": {"enabled": True, "address": "s@x.test"}}, "GATEWAY_EMAIL__IMAP_USER"),
        ({"secret_key": None}, "GATEWAY_SECRET_KEY"),
        (
            {
                "secret_key": None,
                "webchat": {"enabled": False},
                "email": {
                    "enabled": True,
                    "address": "s@x.test",
                    "imap_user": "s@x.test",
                    "imap_password": "pw",
                    "imap_host": "127.0.0.1",
                },
            },
            "GATEWAY_SECRET_KEY",
        ),
    ],
)
def test_a_bad_setting_is_named_by_its_variable(values: dict[str, object], variable: str) -> None:
    lines = errors_of(**values)
    assert len(lines) == 1
    assert variable in lines[0]
    assert "spaces or colons" not in lines[0]  # a secret is not echoed


def test_a_refused_secret_is_not_in_the_error_itself() -> None:
    """``describe_errors`` leaves the value out, but the ``ValidationError`` it reads held it
    (pydantic's ``input_value``), and whatever logs that error (an RQ job's ``Settings()``,
    a traceback) wrote the webhook secret out in full."""
    with pytest.raises(ValidationError) as info:
        make_settings(telegram={"webhook_secret": "hunter2 but with spaces"})
    assert "hunter2" not in str(info.value)


def test_the_cli_fails_at_start_with_one_line_naming_the_variable(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATABASE_URL="postgres:/nonsense", GATEWAY_SECRET_KEY="x" * 20)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("configuration error: GATEWAY_DATABASE_URL")
