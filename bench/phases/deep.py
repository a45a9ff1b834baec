"""deep: page 400 of an app's log (10,000 rows) against page 1, service and baseline, 1 connection."""

from __future__ import annotations

import httpx

from bench import env, load
from bench.load import Run
from bench.phases.base import Context, Need, Phase
from bench.phases.reads import authorization, fetch, read_paths
from bench.report import Row, median


def page_400(api: str, path: str, authorization: str) -> str:
    """Follow `next` links from page 1 to page 400; returns page 400's path and query."""
    url = api + path
    with httpx.Client(headers={"Authorization": authorization}, timeout=10) as client:
        for _ in range(399):
            body = client.get(url).json()
            url = api + body["next"].removeprefix(env.PUBLIC_BASE_URL)
        last = client.get(url).json()
    assert len(last["results"]) == 25 and last["next"] is None, "page 400 must be the last full page"
    return url.removeprefix(api)


def measure_deep(
    urls: dict[str, str], pages: dict[str, dict[str, str]], seconds: float, rounds: int
) -> dict[tuple[str, str], list[Run]]:
    """1-connection wrk runs of each server's pages (who -> page -> path), rounds interleaved."""
    runs: dict[tuple[str, str], list[Run]] = {}
    for index in range(rounds):
        for who, url in urls.items():
            order = list(pages[who].items())
            for page, path in order if index % 2 == 0 else order[::-1]:
                run = load.wrk(url, path, authorization=authorization(), seconds=seconds, connections=1)
                runs.setdefault((who, page), []).append(run)
    return runs


def run(context: Context) -> None:
    report, options = context.report, context.options
    api, base = context.url(Need.API), context.url(Need.BASELINE)
    first = read_paths()["GET webhook_log_entries"]
    deep = page_400(api, first, authorization())
    same = fetch(api + deep, authorization()) == fetch(base + deep, authorization())
    report.details.append(
        f"- page 400 of webhook_log_entries: bodies identical: **{'yes' if same else 'NO'}**"
    )
    pages = {"1": first, "400": deep}
    runs = measure_deep(
        {"service": api, "baseline": base},
        {"service": pages, "baseline": pages},
        max(2.0, options.seconds / 2),
        options.rounds,
    )

    def cost(who: str, page: str) -> float:
        return median([run.p50_ms for run in runs[(who, page)]])

    service_ratio = cost("service", "400") / cost("service", "1")
    baseline_ratio = cost("baseline", "400") / cost("baseline", "1")
    report.add(
        Row(
            "Deep page: page 400 / page 1 (10,000 rows)",
            f"{cost('service', '400'):.2f} / {cost('service', '1'):.2f} ms",
            f"{cost('baseline', '400'):.2f} / {cost('baseline', '1'):.2f} ms",
            f"{service_ratio:.2f}x",
            "<= 1.2x",
            service_ratio <= 1.2,
            f"median latency, 1 connection; baseline's own ratio {baseline_ratio:.2f}x",
        )
    )


PHASE = Phase("deep", "deep pages (wrk, 1 connection)", frozenset({Need.WRK, Need.API, Need.BASELINE}), run)
