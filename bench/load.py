"""The load generator: `wrk` (Debian's package) in its own process, with a Lua script per run.

One wrk thread, N keep-alive connections, a fixed duration. The script's `done()` prints one
JSON line with the request count and the latency percentiles wrk measured (microseconds).

`wrk_by_status()` (the overload phase) splits the responses by status: wrk's own latency
histogram mixes the admitted requests with the immediate 503s of load shedding.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The requests come from a file, one a line (path, Authorization and body, tab-separated; a GET
# is one line with no body), formatted once in `init` and sent in turn: a run can cycle through
# organizations (each with its own path and token), and formatting costs the load generator
# nothing per request.
LUA = r"""
local requests_path = %(requests)s
local method = %(method)s
wrk.headers["Content-Type"] = "application/json"
local requests = {}
local counter = 0

init = function(args)
  for line in io.lines(requests_path) do
    local path, authorization, body = string.match(line, "^([^\t]*)\t([^\t]*)\t(.*)$")
    wrk.headers["Authorization"] = authorization
    requests[#requests + 1] = wrk.format(method, path, nil, body ~= "" and body or nil)
  end
end

request = function()
  counter = counter + 1
  return requests[(counter - 1) %% #requests + 1]
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


# Per-request latency by status. wrk's Lua has no clock and does not tell `response()` which
# request it answers, so `request()` stamps each request with its send time (LuaJIT's ffi,
# CLOCK_MONOTONIC) in X-Request-ID, which the service echoes (RequestContextMiddleware), and
# `response()` subtracts it from the time the response was parsed. The 2xx latencies are kept
# (microseconds); `done()` sorts them and prints their percentiles with the counts by status.
STATUS_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end

local path = %(path)s
wrk.headers["Authorization"] = %(authorization)s
local threads = {}
statuses = {}
admitted = {}
unstamped = 0
local counter = 0

setup = function(thread) table.insert(threads, thread) end

request = function()
  counter = counter + 1
  wrk.headers["X-Request-ID"] = string.format("%%d.%%d", now_us(), counter)
  return wrk.format("GET", path)
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 then
    local stamp = headers["x-request-id"] or headers["X-Request-ID"]
    local sent = stamp and tonumber(string.match(stamp, "^(%%d+)%%."))
    if sent then
      admitted[#admitted + 1] = now_us() - sent
    else
      unstamped = unstamped + 1
    end
  end
end

done = function(summary, latency, requests)
  local counts, values, missing = {}, {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[tostring(status)] = (counts[tostring(status)] or 0) + count
    end
    for _, value in ipairs(thread:get("admitted")) do values[#values + 1] = value end
    missing = missing + thread:get("unstamped")
  end
  table.sort(values)
  local function pct(q)
    if #values == 0 then return -1 end
    return values[math.max(1, math.ceil(q * #values))]
  end
  local parts = {}
  for status, count in pairs(counts) do parts[#parts + 1] = string.format('"%%s": %%d', status, count) end
  io.write(string.format(
    'BENCHJSON {"requests": %%d, "duration_us": %%d, "statuses": {%%s}, "admitted": %%d, "unstamped": %%d, ' ..
    '"p50": %%d, "p99": %%d, "max": %%d, "connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}\n',
    summary.requests, summary.duration, table.concat(parts, ", "), #values, missing,
    pct(0.5), pct(0.99), pct(1.0), summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
end
"""


@dataclass
class StatusRun:
    """One wrk run split by status; latencies are of the 2xx responses only."""

    requests: int
    seconds: float
    statuses: dict[int, int]
    admitted_p50_ms: float
    admitted_p99_ms: float
    admitted_max_ms: float
    unstamped: int  # 2xx responses without the echoed send time (expected 0)
    socket_errors: dict[str, int]

    def count(self, low: int, high: int) -> int:
        return sum(n for status, n in self.statuses.items() if low <= status < high)


@dataclass
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int  # answers with a status of 400 or more (wrk counts those)
    errors: int  # socket errors: connect, read, write, timeout

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        return self.non2xx + self.errors

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Request:
    """One request of a run's cycle: what `wrk_cycle()` sends in turn."""

    path: str
    authorization: str
    body: str = ""  # one JSON document; empty for a GET

    def line(self) -> str:
        # Tabs and newlines never occur in a path, a token or a JSON document (json.dumps escapes them).
        assert not any(c in "\t\n" for c in self.path + self.authorization + self.body)
        return f"{self.path}\t{self.authorization}\t{self.body}"


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
    requests = [Request(path, authorization, body) for body in bodies or [""]]
    return wrk_cycle(base_url, requests, seconds=seconds, connections=connections, method=method)


def wrk_cycle(
    base_url: str, requests: list[Request], *, seconds: float, connections: int = 32, method: str = "GET"
) -> Run:
    """Run wrk against `base_url`, sending `requests` in turn (from the first again after the last)."""
    with tempfile.TemporaryDirectory(prefix="apps-api-bench-") as folder:
        requests_path = Path(folder) / "requests.txt"
        requests_path.write_text("".join(request.line() + "\n" for request in requests))
        script = LUA % {"requests": _lua_string(str(requests_path)), "method": _lua_string(method)}
        data = _run_wrk(base_url, script, connections, seconds)
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


def _run_wrk(base_url: str, script: str, connections: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="apps-api-bench-") as folder:
        path = Path(folder) / "script.lua"
        path.write_text(script)
        result = subprocess.run(
            [
                *("wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"),
                *("--timeout", "10s", "-s", str(path), base_url),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    for line in result.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return dict(json.loads(line.removeprefix("BENCHJSON ")))
    raise RuntimeError(f"wrk printed no result:\n{result.stdout}\n{result.stderr}")


def wrk_by_status(
    base_url: str, path: str, *, authorization: str, seconds: float, connections: int
) -> StatusRun:
    """GET `base_url + path` with wrk; counts by status and the latency of the 2xx responses alone."""
    script = STATUS_LUA % {"path": _lua_string(path), "authorization": _lua_string(authorization)}
    data = _run_wrk(base_url, script, connections, seconds)
    return StatusRun(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        statuses={int(status): count for status, count in data["statuses"].items()},
        admitted_p50_ms=data["p50"] / 1000,
        admitted_p99_ms=data["p99"] / 1000,
        admitted_max_ms=data["max"] / 1000,
        unstamped=data["unstamped"],
        socket_errors={kind: data[kind] for kind in ("connect", "read", "write", "timeout")},
    )
