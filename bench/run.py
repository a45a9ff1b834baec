"""The benchmark run: every measurement next to its baseline, in one run, on this machine.

    .venv/bin/python -m bench [--seconds 5] [--rounds 3] [--soak 60] [--only reads,deep,...] [--profile]
        [--scale 10]

Phases (each interleaves service and baseline rounds and quotes medians and their ratio):
reads, deep, overload, writes, fanout, latency, matching, soak (memory), scale. See docs/benchmarks.md,
Benchmarks. `overload` drives owned_apps at 4x and 16x the reads' connections (load shedding);
`scale` seeds `--scale N` times the data set into a second database and compares a second API
on it with the 1x one.
`--only` runs some phases: RESULTS.md then has only their rows and names the phases that did not
run. `--profile` attaches py-spy to the API during the reads phase (bench/profiles/).
"""

from __future__ import annotations

import argparse
import asyncio

from bench import env, load, seed
from bench.phases import NAMES, PHASES, Context, Need, Phase
from bench.phases.needs import run_phases
from bench.plans import explain_plans
from bench.report import RESULTS, Report, RunInfo, log, machine, versions, write_results


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5, help="length of one timed round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (median; default 3)")
    parser.add_argument(
        "--soak", type=float, default=60, help="soak length in seconds (default 60; 300 = 5 min)"
    )
    parser.add_argument(
        "--only", default=",".join(NAMES), help=f"comma-separated phases of {','.join(NAMES)}"
    )
    parser.add_argument("--fanout-events", type=int, default=20, help="events per fan-out round (default 20)")
    parser.add_argument(
        "--fanout-webhooks", type=int, default=100, help="webhooks each event reaches (default 100)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=20, help="length of the latency stream (default 20)"
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=10,
        help="the scale phase's data set, N times the 1x one (default 10), in the database <bench database>_xN",
    )
    parser.add_argument("--reseed", action="store_true", help="drop and seed the data set again")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table only; leave RESULTS.md alone"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="flamegraph",
        choices=("flamegraph", "speedscope"),
        help="record the API process with py-spy during the reads phase into bench/profiles/ "
        "(flamegraph SVG by default, or speedscope JSON)",
    )
    return parser


def chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Phase]:
    """The phases `--only` names, in the order they run; sets `args.phases` to their names."""
    names = _names(parser, args)
    phases = [phase for phase in PHASES if phase.name in names]
    if any(Need.WRK in phase.needs for phase in phases) and not load.wrk_available():
        parser.error("wrk is missing: apt-get install -y wrk (Debian's package; docs/benchmarks.md)")
    args.phases = [name for name in NAMES if name in names]
    return phases


def _names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> set[str]:
    names = {phase.strip() for phase in args.only.split(",") if phase.strip()}
    if unknown := names - set(NAMES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not names:
        parser.error("--only names no phase")
    if args.profile and "reads" not in names:
        parser.error("--profile records the reads phase: include it in --only")
    return names


def main(argv: list[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    phases = chosen(arguments, args)
    report = Report()
    log("starting services")
    services = env.start_services()
    try:
        log(f"{services.description}; seeding (reused when present)")
        asyncio.run(seed.seed(services.asyncpg_url, force=args.reseed))
        env.flush_redis(services.redis_url)
        info, versions_ = machine(), asyncio.run(versions(services))
        report.header()
        run_phases(phases, Context(report, args, services))
        plans = asyncio.run(explain_plans(services))
        if not args.no_write:
            skipped = [name for name in NAMES if name not in args.phases]
            write_results(report, RunInfo(info, versions_, services.description, args, skipped), plans)
            log(f"wrote {RESULTS.relative_to(env.ROOT)}")
        # After the results are written: with many organizations left by other runs, the
        # cascading delete can take minutes, and an interrupted clean-up loses no figure.
        log("removing the rows the run added")
        asyncio.run(seed.cleanup(services.asyncpg_url))
    finally:
        services.stop()
    return 0
