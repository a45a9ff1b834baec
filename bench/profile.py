"""`--profile`: py-spy attached to the API while the reads phase runs (bench/profiles/)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench import env
from bench.report import log

PROFILES = Path(__file__).with_name("profiles")


@contextmanager
def profiled(pid: int, label: str, output_format: str | None) -> Iterator[Path | None]:
    """`py-spy record` attached to process `pid` for the duration of the block (no-op without a format).

    --nonblocking: py-spy reads the stacks without pausing the process, so the profiled phase
    is slowed by py-spy's own CPU (it shares the cores), not by stopping the server.
    """
    if output_format is None:
        yield None
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install -e '.[bench]'")
    PROFILES.mkdir(exist_ok=True)
    suffix = "svg" if output_format == "flamegraph" else "speedscope.json"
    path = PROFILES / f"{label}-{datetime.now(UTC):%Y%m%d-%H%M%S}.{suffix}"
    process = subprocess.Popen(
        [
            *(spy, "record", "--pid", str(pid), "--format", output_format, "--output", str(path)),
            *("--rate", "100", "--nonblocking"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield path
    finally:
        # py-spy writes its file when interrupted, as on Ctrl-C.
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode != 0 or not path.exists():
            log(f"py-spy failed ({process.returncode}): {output.strip()[-2000:]}")
        else:
            log(f"profile of the API during {label}: {path.relative_to(env.ROOT)}")
