"""The load generator: `wrk` (Debian's package) in its own process, with a Lua script per run.

One wrk thread, N keep-alive connections, a fixed duration. The script's `done()` prints one
JSON line with the request count and the latency percentiles wrk measured (microseconds).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = r"""
local path = %(path)s
local bodies_path = %(bodies)s
local method = %(method)s
wrk.headers["Authorization"] = %(authorization)s
wrk.headers["Content-Type"] = "application/json"
local bodies = nil
local counter = 0

init = function(args)
  if bodies_path ~= "" then
    bodies = {}
    for line in io.lines(bodies_path) do bodies[#bodies + 1] = line end
  end
end

request = function()
  if bodies then
    counter = counter + 1
    return wrk.format(method, path, nil, bodies[(counter - 1) %% #bodies + 1])
  end
  return wrk.format(method, path)
end

done = function(summary, latency, requests)
  io.write(string.format(
    'BENCHJSON {"requests": %%d, "duration_us": %%d, "p50": %%d, "p90": %%d, "p99": %%d, "max": %%d, ' ..
    '"non2xx": %%d, "errors": %%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk(
    base_url: str,
    path: str,
    *,
    authorization: str,
    seconds: float,
    connections: int = 32,
    method: str = "GET",
    bodies: list[str] | None = None,
) -> Run:
    """Run wrk against `base_url + path`; `bodies` (one JSON document each) are sent in turn."""
    with tempfile.TemporaryDirectory(prefix="apps-api-bench-") as folder:
        bodies_path = ""
        if bodies:
            bodies_path = str(Path(folder) / "bodies.txt")
            Path(bodies_path).write_text("\n".join(bodies) + "\n")
        script = Path(folder) / "script.lua"
        script.write_text(
            LUA
            % {
                "path": _lua_string(path),
                "bodies": _lua_string(bodies_path),
                "method": _lua_string(method),
                "authorization": _lua_string(authorization),
            }
        )
        result = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                base_url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    for line in result.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            data = json.loads(line.removeprefix("BENCHJSON "))
            return Run(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50"] / 1000,
                p90_ms=data["p90"] / 1000,
                p99_ms=data["p99"] / 1000,
                max_ms=data["max"] / 1000,
                non2xx=data["non2xx"],
                errors=data["errors"],
            )
    raise RuntimeError(f"wrk printed no result:\n{result.stdout}\n{result.stderr}")
