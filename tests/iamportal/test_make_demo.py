"""`make demo` and `make venv`: what they install and how they start the demo,
read from make's dry run (nothing is installed or started)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(target: str, venv: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "PORT", "MAKEFLAGS")}
    result = subprocess.run(  # noqa: S603
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],  # noqa: S607
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def installed(venv: Path, *extras: str) -> None:
    venv.mkdir(exist_ok=True)
    for extra in extras:
        (venv / f".{extra}-installed").touch()


def test_the_demo_installs_the_runtime_and_the_embedded_aws_only(tmp_path: Path) -> None:
    out = dry_run("demo", tmp_path / "venv")
    assert "pip install -e '.[demo]'" in out
    assert ".[dev]" not in out
    assert "first run: about a minute" in out


def test_the_long_install_step_shows_its_progress(tmp_path: Path) -> None:
    out = dry_run("demo", tmp_path / "venv")
    install = next(line for line in out.splitlines() if "install -e" in line)
    assert "--quiet" not in install


def test_the_tests_install_the_dev_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    installed(venv, "demo")
    out = dry_run("venv", venv)
    assert "pip install -e '.[dev]'" in out


def test_a_dev_install_serves_the_demo_without_installing_again(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    installed(venv, "dev", "demo")
    out = dry_run("demo", venv)
    assert "pip install" not in out
    assert "manage.py demo" in out


def test_the_demo_installs_again_after_the_dependencies_change(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    installed(venv, "dev", "demo")
    stale = (ROOT / "pyproject.toml").stat().st_mtime - 60
    for stamp in venv.iterdir():
        os.utime(stamp, (stale, stale))
    assert "pip install -e '.[demo]'" in dry_run("demo", venv)


def test_demo_email_links_use_the_demo_port(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    installed(venv, "demo")
    assert "SITE_URL='http://127.0.0.1:8123'" in dry_run("demo", venv, PORT="8123")
    custom = dry_run("demo", venv, PORT="8123", SITE_URL="https://portal.example.com")
    assert "SITE_URL='https://portal.example.com'" in custom


def test_the_demo_runs_with_debug_off_and_a_key_of_its_own(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    installed(venv, "demo")
    out = dry_run("demo", venv)
    assert "DEBUG=false" in out
    assert "SECRET_KEY=$(" in out
    assert "EMAIL_BACKEND=console" in out
