"""Secrets: random keys stored as digests, argon2id passwords, constant-time comparisons."""

from __future__ import annotations

import base64
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_password_hasher = PasswordHasher()
# Verifying against this keeps the timing of "no such user" equal to "wrong password".
_DUMMY_HASH = _password_hasher.hash("not a real password")


def new_token_key() -> str:
    """A 256-bit URL-safe API token key."""
    return secrets.token_urlsafe(32)


def digest(key: str) -> bytes:
    """SHA-256 of a high-entropy key: enough for lookups, and the key itself is never stored."""
    return hashlib.sha256(key.encode()).digest()


def new_app_secret() -> str:
    """32 random bytes, standard base64 (DESIGN.md section 6)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def constant_time_equals(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
