"""CPU per matched event with 1k, 10k and 100k subscriptions (docs/design.md section 8).

Builds apps with webhooks and channel subscriptions spread over 10k installations in
1k organizations, compiles them into the per-app tries the dispatcher uses, and times
`match_event` for a mix of events. Matching walks only the tries of the apps installed
in the event's organization, so the cost per event stays flat as subscriptions grow.

    .venv/bin/python bench/matching.py
"""

from __future__ import annotations

import random
import time
import uuid

from apps_api.delivery.matching import (
    INSTALLATIONS_PATTERN,
    AppMatcher,
    EventView,
    InstallationView,
    Subscription,
    installations_channel_app,
    match_event,
)

ORGANIZATIONS = 1_000
INSTALLATIONS = 10_000
RESOURCES = ["chats", "users", "teams", "rooms", "visitors", "reports", "rules", "domains"]


def patterns(rng: random.Random, count: int) -> list[str]:
    choices = []
    for _ in range(count):
        resource = rng.choice(RESOURCES)
        choices.append(
            rng.choice(
                [
                    f"/api/v5/orgs/{{organization_id}}/{resource}",
                    f"/api/v5/orgs/{{organization_id}}/{resource}/*/messages",
                    f"/api/v5/orgs/{{organization_id}}/*/{resource}",
                    f"/api/v5/users/{{user_id}}/{resource}",
                    f"/api/v5/users/{{user_id}}/{resource}/*/messages/*",
                    f"/api/v5/orgs/{{organization_id}}/{resource}-{rng.randrange(1000)}",
                    INSTALLATIONS_PATTERN,
                ]
            )
        )
    return choices


def build(total_subscriptions: int, rng: random.Random):  # type: ignore[no-untyped-def]
    apps = max(10, total_subscriptions // 100)  # ~100 subscriptions per app (10 webhooks x 10)
    app_ids = [uuid.uuid4() for _ in range(apps)]
    owners = {app_id: uuid.uuid4() for app_id in app_ids}
    matchers: dict[uuid.UUID, AppMatcher] = {}
    per_app = total_subscriptions // apps
    for app_id in app_ids:
        webhooks = [uuid.uuid4() for _ in range(10)]
        subscriptions = [
            Subscription(rng.choice(webhooks), pattern, True, rng.random() < 0.5, rng.random() < 0.3)
            for pattern in patterns(rng, per_app)
        ]
        matchers[app_id] = AppMatcher(subscriptions)
    organizations = [uuid.uuid4() for _ in range(ORGANIZATIONS)]
    by_org: dict[uuid.UUID, list[InstallationView]] = {org: [] for org in organizations}
    for index in range(INSTALLATIONS):
        org = organizations[index % ORGANIZATIONS]
        app_id = app_ids[index % apps]
        by_org[org].append(
            InstallationView(
                uuid.uuid4(), app_id, org, uuid.uuid4(), frozenset({"reports", "users"}), owners[app_id]
            )
        )
    return matchers, by_org, owners


def events(by_org, owners, rng: random.Random, count: int):  # type: ignore[no-untyped-def]
    organizations = list(by_org)
    result = []
    for _ in range(count):
        org = rng.choice(organizations)
        installs = by_org[org]
        kind = rng.random()
        if kind < 0.6:
            channel = f"/api/v5/orgs/{org}/{rng.choice(RESOURCES)}"
        elif kind < 0.8:
            channel = f"/api/v5/orgs/{org}/{rng.choice(RESOURCES)}/{uuid.uuid4()}/messages"
        elif kind < 0.95 and installs:
            channel = f"/api/v5/users/{rng.choice(installs).app_user_id}/{rng.choice(RESOURCES)}"
        else:
            app_id = rng.choice(list(owners))
            org = owners[app_id]
            channel = f"/api/v5/orgs/{org}/owned_apps/{app_id}/installations"
        result.append(
            EventView(
                org, channel, rng.choice(["added", "changed", "removed"]), rng.choice([None, "reports"])
            )
        )
    return result


def measure(total: int, sample_size: int = 20_000) -> tuple[int, float, float]:
    """(apps, matches per event, CPU microseconds per event) with `total` subscriptions."""
    rng = random.Random(total)
    matchers, by_org, owners = build(total, rng)
    sample = events(by_org, owners, rng, sample_size)
    matched = 0
    started = time.process_time()
    for event in sample:
        pair = installations_channel_app(event.channel)
        owned = pair if pair is not None and owners.get(pair[1]) == pair[0] else None
        matched += len(
            match_event(
                event,
                installations=by_org.get(event.organization_id, ()),
                matchers=matchers,
                owned_app=owned,
            )
        )
    elapsed = time.process_time() - started
    return len(matchers), matched / len(sample), elapsed / len(sample) * 1e6


def main() -> None:
    header = ("subscriptions", "apps", "installations", "events", "matches/event", "CPU us/event")
    print("{:>13} {:>6} {:>13} {:>7} {:>13} {:>12}".format(*header))
    for total in (1_000, 10_000, 100_000):
        apps, matches, cpu_us = measure(total)
        print(f"{total:>13} {apps:>6} {INSTALLATIONS:>13} {20_000:>7} {matches:>13.2f} {cpu_us:>12.1f}")


if __name__ == "__main__":
    main()
