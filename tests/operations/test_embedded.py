"""The fresh-machine path: `apps-api serve` with nothing configured runs everything itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _processes_using(state_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(state_dir) in cmdline and ("postgres" in cmdline or "redis-server" in cmdline):
            found.append(process)
    return found


def test_serve_embedded_then_demo_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    state_dir = (tmp_path / "state").resolve()
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("APPS_API_")}
    serve = subprocess.Popen(
        [sys.executable, "-m", "apps_api", "--state-dir", str(state_dir), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None, serve.stdout.read().decode() if serve.stdout else ""
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)

        worker = [
            child for child in psutil.Process(serve.pid).children() if "worker" in " ".join(child.cmdline())
        ]
        assert len(worker) == 1, "the embedded serve runs the arq worker too"
        assert _processes_using(state_dir), "embedded PostgreSQL and Redis run under the state folder"

        demo = subprocess.run(
            [sys.executable, "-m", "apps_api", "--state-dir", str(state_dir), "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        credentials = json.loads(demo.stdout)
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v5/public_apps",
            headers={"Authorization": f"Token {credentials['token']}"},
        )
        assert response.status_code == 200
        assert response.json() == {"next": None, "previous": None, "results": []}
        # demo joined the running servers and left them running
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
            raise
    assert serve.returncode == 0
    deadline = time.monotonic() + 10
    while _processes_using(state_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(state_dir) == [], "Ctrl-C stops PostgreSQL and Redis"
