"""Throttling of credential guessing, shared by every API process through Redis.

A subject (an account's email, a device cookie, a client address, an app's canonical id) that
fails `max_failures` times within 15 minutes (5; a client address 20) is locked. What a lock
refuses is the caller's rule, made so that a stranger's failures cannot lock the owner out:
`/identity/token` checks the secret first and refuses only wrong ones; a sign-in from a browser
holding a device cookie of the account is counted per device cookie, not per account. Each new
lock of the same subject lasts twice as long as the previous one (1 min, 2, 4, ... at most 1 h);
the lock level is forgotten a day after the last lock, and a success clears a subject's failures
and level.

Subjects are stored as SHA-256 digests (no email address or client id in Redis). Each step is
one Lua script, so concurrent failures on several processes count exactly. Keys are named after
the deployment's queue (the arq pool's `default_queue_name`, `settings.queue_name`), as its cron
jobs are: deployments or test runs sharing a Redis never count each other's failures.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

MAX_FAILURES = 5
# A client address is shared (offices, mobile carriers' NAT): it takes more failures to lock.
ADDRESS_MAX_FAILURES = 20
WINDOW_SECONDS = 15 * 60
FIRST_LOCK_SECONDS = 60
MAX_LOCK_SECONDS = 60 * 60
LEVEL_MEMORY_SECONDS = 24 * 60 * 60

# KEYS: fails, level, lock. ARGV: max failures, window, first lock, max lock, level memory.
# Returns the lock's seconds when this failure locked the subject, else 0.
_FAIL = """
local fails = redis.call('INCR', KEYS[1])
if fails == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if fails < tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
local level = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
local seconds = math.min(tonumber(ARGV[3]) * 2 ^ (level - 1), tonumber(ARGV[4]))
redis.call('SET', KEYS[3], '1', 'EX', math.floor(seconds))
return math.floor(seconds)
"""


class ThrottleUnavailable(Exception):
    """Redis did not answer: credentials are not checked unthrottled (the caller answers 503)."""


@dataclass(frozen=True)
class Subject:
    """What failures are counted against: a kind (`login-account`, `login-address`, ...), a value,
    and how many failures within the window lock it."""

    kind: str
    value: str
    max_failures: int = MAX_FAILURES

    def key(self, part: str, namespace: str) -> str:
        hashed = hashlib.sha256(self.value.encode()).hexdigest()[:32]
        return f"{namespace}:throttle:{self.kind}:{hashed}:{part}"


def namespace_of(redis: Any) -> str:
    """The deployment's namespace of a Redis client: the arq pool's queue name."""
    return str(redis.default_queue_name)


async def locked_for(redis: Any, subjects: list[Subject]) -> int:
    """Seconds until every lock of these subjects has ended (0: none is locked)."""
    if redis is None or not subjects:
        return 0
    try:
        namespace = namespace_of(redis)
        ttls = [await redis.ttl(subject.key("lock", namespace)) for subject in subjects]
    except Exception as error:
        raise ThrottleUnavailable(str(type(error).__name__)) from error
    return max((int(ttl) for ttl in ttls if ttl and int(ttl) > 0), default=0)


async def record_failure(redis: Any, subjects: list[Subject]) -> int:
    """Count a failure against each subject; returns the longest lock it started (0: none)."""
    if redis is None:
        return 0
    longest = 0
    namespace = namespace_of(redis)
    try:
        for subject in subjects:
            seconds = await redis.eval(
                _FAIL,
                3,
                subject.key("fails", namespace),
                subject.key("level", namespace),
                subject.key("lock", namespace),
                subject.max_failures,
                WINDOW_SECONDS,
                FIRST_LOCK_SECONDS,
                MAX_LOCK_SECONDS,
                LEVEL_MEMORY_SECONDS,
            )
            if int(seconds):
                logger.warning(
                    "%s locked for %s s after %s failures", subject.kind, seconds, subject.max_failures
                )
            longest = max(longest, int(seconds))
    except Exception as error:
        raise ThrottleUnavailable(str(type(error).__name__)) from error
    return longest


async def record_success(redis: Any, subjects: list[Subject]) -> None:
    """Forget the failures and lock level of these subjects (not of a shared client address)."""
    if redis is None or not subjects:
        return
    try:
        namespace = namespace_of(redis)
        await redis.delete(
            *(subject.key(part, namespace) for subject in subjects for part in ("fails", "level"))
        )
    except Exception as error:
        raise ThrottleUnavailable(str(type(error).__name__)) from error
