"""Configuration: bad values stop start-up naming the variable; production is hardened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k3y-" + "x9Qz!7pL" * 8,
    "ALLOWED_HOSTS": "iamportal.example.com",
    "SITE_URL": "https://iamportal.example.com",
    "DATABASE_URL": "sqlite:///" + os.devnull,
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "Q_BROKER")}
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_the_deployment_checks() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_it_warns_when_emails_would_guess_their_links() -> None:
    result = manage("check", "--deploy", **{**PRODUCTION, "SITE_URL": ""})
    assert "iamportal.W001" in result.stderr + result.stdout


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off() -> None:
    env = {**PRODUCTION, "SECRET_KEY": ""}
    result = manage("check", **env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("Q_WORKERS", "many"),
        ("Q_BROKER", "amqp://guest@localhost"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("DATABASE_HEALTH_CHECK_INTERVAL_MS", "soon"),
        ("IAMPORTAL_SYNC_INTERVAL_MINUTES", "0"),
        ("IAMPORTAL_REGIONS", "us-east-1,not a region"),
        ("IAMPORTAL_CONFIG_AGGREGATOR", "not an aggregator name"),
        ("IAMPORTAL_CONFIG_ACCOUNT_ID", "12345"),
        ("IAMPORTAL_CONFIG_REGION", "not a region"),
        ("IAMPORTAL_CONFIG_ROLE_NAME", "iamportal-spoke"),
        ("IAMPORTAL_DEMO_CONFIG", "true"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable: str, value: str) -> None:
    result = manage("check", **{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr.splitlines()[-1]


def test_it_refuses_to_serve_a_real_host_with_the_development_key() -> None:
    result = manage("check", ALLOWED_HOSTS="iamportal.example.com")
    assert result.returncode != 0
    assert "iamportal.E001" in result.stderr
    assert manage("check").returncode == 0  # loopback only, as in the demo


def test_a_redis_broker_url_configures_the_redis_broker() -> None:
    code = (
        "from django.conf import settings; "
        "print(settings.Q_CLUSTER.get('redis'), 'orm' in settings.Q_CLUSTER)"
    )
    result = manage("shell", "-c", code, Q_BROKER="redis://127.0.0.1:6379/3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "redis://127.0.0.1:6379/3 False"
