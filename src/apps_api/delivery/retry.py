"""The retry plan: what happens to a delivery after an attempt (docs/design.md section 8)."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apps_api.delivery.states import DeliveryStatus
from apps_api.outbound.client import Outcome
from apps_api.settings import Settings

# Retries due within this many seconds are enqueued as deferred arq jobs; longer waits
# live only in PostgreSQL (`next_attempt_at`) and the sweeper enqueues them when due.
SHORT_WAIT_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


@dataclass
class Plan:
    """What happens after an attempt: the delivery's new status and, when pending, its next attempt."""

    status: DeliveryStatus
    next_attempt_at: datetime | None = None
    delay: float | None = None
    attempt_count: int = 0


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


def classify(outcome: Outcome, *, redirect_delivers: bool = False) -> tuple[bool, str | None]:
    """(success, failure reason).

    `redirect_delivers`: a trigger URL is a page (the browser flow follows its redirects), so a
    3xx answer to a server-sent trigger counts as delivered; a webhook must answer 2xx.
    """
    code = outcome.status_code
    if outcome.error is not None:
        return False, outcome.error
    assert code is not None
    if 200 <= code < 300 or (redirect_delivers and 300 <= code < 400):
        return True, None
    if 300 <= code < 400:
        return False, f"Redirect ({code}) not followed."
    if code == 410:
        return False, "Gone (410): the endpoint asked to stop; no more retries."
    return False, f"Non-2xx response: {code}."


def plan_next(
    *,
    settings: Settings,
    attempt_count: int,
    max_attempts: int,
    outcome: Outcome,
    now: datetime,
    redirect_delivers: bool = False,
) -> Plan:
    """Success, final failure, or the time of the next attempt (schedule with jitter, or Retry-After)."""
    success, _ = classify(outcome, redirect_delivers=redirect_delivers)
    if success:
        return Plan(DeliveryStatus.SUCCESSFUL, attempt_count=attempt_count)
    if outcome.status_code == 410 or attempt_count >= max_attempts:
        return Plan(DeliveryStatus.FAILED, attempt_count=attempt_count)
    delays = settings.retry_delays or (5.0,)
    delay = delays[min(attempt_count - 1, len(delays) - 1)] * random.uniform(0.9, 1.1)
    if outcome.status_code in (429, 503):
        retry_after = retry_after_seconds(outcome.header("retry-after"), now)
        if retry_after is not None:
            delay = min(max(retry_after, 1.0), MAX_RETRY_AFTER_SECONDS)
    return Plan(DeliveryStatus.PENDING, now + timedelta(seconds=delay), delay, attempt_count)
