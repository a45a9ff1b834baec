"""Secrets: random keys stored as digests, argon2id passwords, constant-time comparisons."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

# argon2id at OWASP's recommendation (Password Storage Cheat Sheet, "Argon2id": "a minimum
# configuration of 19 MiB of memory, an iteration count of 2, and 1 degree of parallelism"),
# https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id
# argon2-cffi's default (64 MiB, t=3, p=4) cost 3.4x the memory per attempt for no stronger
# guarantee at that level. Hashes with other parameters are rehashed at the next login.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
_password_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
)
# Verifying against this keeps the timing of "no such user" equal to "wrong password".
_DUMMY_HASH = _password_hasher.hash("not a real password")
T = TypeVar("T")


def new_token_key() -> str:
    """A 256-bit URL-safe API token key."""
    return secrets.token_urlsafe(32)


def digest(key: str) -> bytes:
    """SHA-256 of a high-entropy key: enough for lookups, and the key itself is never stored."""
    return hashlib.sha256(key.encode()).digest()


def new_app_secret() -> str:
    """32 random bytes as 64 lowercase hex characters.

    URL- and form-safe (integrators post it unencoded in form bodies, as giosg's 40-hex secrets),
    and still a valid Standard Webhooks secret: the signing key is its base64 decoding (48 bytes),
    so `standardwebhooks.Webhook(secret)` verifies. Older base64 secrets stay valid.
    """
    return secrets.token_hex(32)


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the current ones."""
    try:
        return _password_hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


class HashingBusy(Exception):
    """Every password hashing slot stayed busy for the whole wait: answer 503."""


@dataclass
class PasswordHashing:
    """Bounds the password hashing a process does at once (each argon2id run holds 19 MiB and a core).

    Excess attempts wait up to `wait_seconds` for a slot, then get `HashingBusy` (a 503), so a
    flood of logins can neither balloon the process's memory nor starve the event loop's threads.
    """

    concurrency: int = 2
    wait_seconds: float = 5.0

    def __post_init__(self) -> None:
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        # A semaphore belongs to one event loop (a process has one; a test run has several).
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(max(1, self.concurrency)), loop
        return self._slots

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        slots = self.slots
        try:
            await asyncio.wait_for(slots.acquire(), timeout=self.wait_seconds)
        except TimeoutError:
            raise HashingBusy from None
        try:
            return await run_in_threadpool(function, *args)
        finally:
            slots.release()


password_hashing = PasswordHashing()


def configure_password_hashing(*, concurrency: int, wait_seconds: float) -> PasswordHashing:
    """Replace the process's hashing bound (from settings, at startup)."""
    global password_hashing
    password_hashing = PasswordHashing(concurrency=concurrency, wait_seconds=wait_seconds)
    return password_hashing


async def verify_password_bounded(password_hash: str | None, password: str) -> bool:
    """`verify_password` in a worker thread, within the process's hashing bound."""
    return await password_hashing.run(verify_password, password_hash, password)


async def hash_password_bounded(password: str) -> str:
    """`hash_password` in a worker thread, within the process's hashing bound."""
    return await password_hashing.run(hash_password, password)


def constant_time_equals(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
