"""App secrets at rest, as the service stores them: AES-256-GCM under `APPS_API_ENCRYPTION_KEYS`.

The same format (`enc:v1:<key id>:<urlsafe base64 of nonce | ciphertext | tag>`, the same
associated data), written by hand with `cryptography`: the baseline encrypts the secret of every
app it creates and decrypts what it reads, as the service does, so neither side skips that work.
The seeded rows hold plaintext secrets, which read as they are (as in the service).
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
_NONCE_BYTES = 12
_AAD = b"apps-api secret v1"


def _key(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))


_KEYS = {
    hashlib.sha256(key).hexdigest()[:8]: key
    for key in (
        _key(item) for item in os.environ.get("APPS_API_ENCRYPTION_KEYS", "").split(",") if item.strip()
    )
}
_PRIMARY = next(iter(_KEYS.items()), None)


def encrypt(plaintext: str) -> str:
    assert _PRIMARY is not None, "APPS_API_ENCRYPTION_KEYS is not set (bench/env.py sets it)"
    key_id, key = _PRIMARY
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), _AAD)
    return f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored  # plaintext (the seeded rows)
    key_id, _, payload = stored[len(PREFIX) :].partition(":")
    raw = base64.urlsafe_b64decode(payload)
    return AESGCM(_KEYS[key_id]).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD).decode()
