"""App secrets at rest: AES-256-GCM under `APPS_API_ENCRYPTION_KEYS` (the first key encrypts, all decrypt).

A database dump alone must not let anyone sign webhooks or act as an app, so app secrets (and
the copies kept for pending trigger deliveries) are stored as
`enc:v1:<key id>:<urlsafe base64 of nonce | ciphertext | tag>`. The key id (8 hex characters of
the key's SHA-256) names the key that decrypts, so keys can rotate: put a new key first, run
`apps-api admin reencrypt`, then drop the old one. A value without the prefix is a plaintext
secret written before encryption (the migration and `reencrypt` convert those); it is read as is.

ORM columns use `EncryptedText`, which encrypts on write and decrypts on read; the few hot
statements that bypass the ORM (raw asyncpg) call `encrypt` / `decrypt` themselves.
Tokens and passwords are not here: they stay one-way hashed (kit/security.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

PREFIX = "enc:v1:"
_NONCE_BYTES = 12
# Binds a ciphertext to its purpose: it decrypts only as an apps-api secret.
_AAD = b"apps-api secret v1"


class EncryptionKeyMissing(RuntimeError):
    """A secret must be encrypted or decrypted, and no key (or not its key) is configured."""


def new_encryption_key() -> str:
    """A fresh key for APPS_API_ENCRYPTION_KEYS: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _key_bytes(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("an encryption key must be URL-safe base64 of 32 bytes") from None
    if len(raw) != 32:
        raise ValueError("an encryption key must be URL-safe base64 of 32 bytes (AES-256)")
    return raw


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


@dataclass(frozen=True)
class Keyring:
    """The configured keys: the first encrypts; each decrypts what names its id."""

    keys: tuple[bytes, ...]

    @classmethod
    def parse(cls, value: str | None) -> Keyring:
        """Comma-separated URL-safe base64 keys (`APPS_API_ENCRYPTION_KEYS`)."""
        items = [item for item in (value or "").split(",") if item.strip()]
        return cls(tuple(_key_bytes(item) for item in items))

    @property
    def primary_id(self) -> str | None:
        return key_id(self.keys[0]) if self.keys else None

    def encrypt(self, plaintext: str) -> str:
        if not self.keys:
            raise EncryptionKeyMissing(
                "APPS_API_ENCRYPTION_KEYS is not set: app secrets cannot be stored (docs/configuration.md)"
            )
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, plaintext.encode(), _AAD)
        return f"{PREFIX}{key_id(self.keys[0])}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # plaintext from before encryption at rest
        kid, _, payload = stored[len(PREFIX) :].partition(":")
        for key in self.keys:
            if key_id(key) == kid:
                raw = base64.urlsafe_b64decode(payload)
                return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD).decode()
        raise EncryptionKeyMissing(f"no configured encryption key has the id {kid}")

    def is_current(self, stored: str) -> bool:
        """Encrypted under the first key (nothing for `reencrypt` to do)."""
        return self.primary_id is not None and stored.startswith(f"{PREFIX}{self.primary_id}:")


_configured: Keyring | None = None
_from_settings: tuple[str | None, Keyring] | None = None


def configure_encryption(keys: str | None) -> Keyring:
    """Set this process's keys (API, worker and CLI do it at start from their settings)."""
    global _configured
    _configured = Keyring.parse(keys)
    return _configured


def keyring() -> Keyring:
    """The configured keys; unless configured, those of the process's current settings."""
    global _from_settings
    if _configured is not None:
        return _configured
    from apps_api.settings import get_settings

    value = get_settings().encryption_keys
    if _from_settings is None or _from_settings[0] != value:
        _from_settings = (value, Keyring.parse(value))
    return _from_settings[1]


def encrypt(plaintext: str) -> str:
    """A secret as stored: encrypted under the first key."""
    return keyring().encrypt(plaintext)


def decrypt(stored: str) -> str:
    """A stored secret in plaintext (a plaintext value from before encryption is returned as is)."""
    return keyring().decrypt(stored)


def decrypt_optional(stored: str | None) -> str | None:
    return None if stored is None else decrypt(stored)


class EncryptedText(TypeDecorator[str]):
    """A text column holding a secret: plaintext in Python, AES-GCM ciphertext in PostgreSQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = str(value)
        return text if text.startswith(PREFIX) else encrypt(text)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(str(value))
