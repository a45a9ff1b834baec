"""A first run that cannot be misconfigured (issue 25): real `python -m apps_api` processes.

With an external database the keys must be the operator's: `serve`, `worker` and `migrate`
stop before they bind or work, with one line naming the missing variable.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from apps_api import __version__
from apps_api.embedded import mark_serving, serving_pid
from apps_api.settings import Settings
from tests.fixtures.live_server import ROOT, free_port

pytestmark = pytest.mark.subprocess


def _run(*args: str, without: tuple[str, ...] = (), timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in without}
    return subprocess.run(
        [sys.executable, "-m", "apps_api", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("serve", "APPS_API_ENCRYPTION_KEYS"),
        ("serve", "APPS_API_SECRET_KEY"),
        ("worker", "APPS_API_ENCRYPTION_KEYS"),
        ("worker", "APPS_API_SECRET_KEY"),
        ("migrate", "APPS_API_ENCRYPTION_KEYS"),
        ("migrate", "APPS_API_SECRET_KEY"),
    ],
)
def test_a_missing_key_stops_the_command_before_it_starts(
    settings: Settings, command: str, missing: str
) -> None:
    port = free_port()
    args = ["serve", "--port", str(port), "--no-worker"] if command == "serve" else [command]
    # The test database is external: APPS_API_DATABASE_URL is set in this environment.
    assert os.environ["APPS_API_DATABASE_URL"]
    result = _run(*args, without=(missing,))
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"apps-api: error: {missing} is not set"), lines[0]
    assert result.stdout == ""
    assert _port_is_free(port)


def test_a_blank_secret_key_is_a_missing_one(settings: Settings) -> None:
    env_blank = {**os.environ, "APPS_API_SECRET_KEY": " "}
    result = subprocess.run(
        [sys.executable, "-m", "apps_api", "migrate"],
        capture_output=True,
        text=True,
        env=env_blank,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "APPS_API_SECRET_KEY is not set" in result.stderr


def test_version_and_keygen() -> None:
    version = _run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"apps-api {__version__}"
    key = _run("keygen")
    assert key.returncode == 0
    from apps_api.kit.crypto import configure_encryption, decrypt, encrypt

    configure_encryption(key.stdout.strip())
    try:
        assert decrypt(encrypt("secret")) == "secret"
    finally:
        configure_encryption(os.environ["APPS_API_ENCRYPTION_KEYS"])


def test_serve_marks_its_state_folder_for_demo_and_admin(tmp_path: Path) -> None:
    assert serving_pid(tmp_path) is None
    path = mark_serving(tmp_path)
    assert serving_pid(tmp_path) == os.getpid()
    path.write_text("999999999")  # a serve that died without cleaning up
    assert serving_pid(tmp_path) is None
