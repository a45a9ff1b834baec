"""Issue 13, item 7: app secrets (current, previous, and the copies of pending trigger deliveries)
are encrypted at rest with AES-GCM; `apps-api admin reencrypt` moves them to the first key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from typing import cast

import asyncpg
import httpx
import pytest
from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from apps_api import settings as settings_module
from apps_api.auth import secrets as secrets_module
from apps_api.installations.service import uninstall
from apps_api.kit import crypto
from apps_api.kit.crypto import (
    PREFIX,
    EncryptionKeyMissing,
    Keyring,
    configure_encryption,
    key_id,
    new_encryption_key,
)
from apps_api.kit.driver import with_column_defaults
from apps_api.models import App, OutboundDelivery
from apps_api.settings import Settings
from tests.fixtures.apps import app_payload, owned_url
from tests.fixtures.factories import Tenant, make_app, make_tenant
from tests.fixtures.installflow import install_directly, make_installer
from tests.fixtures.live_server import committed_tenant
from tests.fixtures.world import delete_organizations


async def _all_tables_as_text(connection: AsyncConnection) -> str:
    """Every row of every table of the schema, as PostgreSQL prints it: what a dump would hold."""
    tables = (
        await connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        )
    ).scalars()
    dumped = []
    for table in tables:
        rows = (await connection.execute(text(f'SELECT t::text FROM "{table}" AS t'))).scalars()  # noqa: S608
        dumped.extend(rows)
    return "\n".join(dumped)


async def test_a_database_dump_holds_no_app_secret(
    client: httpx.AsyncClient, session: AsyncSession, connection: AsyncConnection, tenant: Tenant
) -> None:
    # Created through the API (its INSERT bypasses the ORM), rotated with a grace period (a
    # previous secret), installed and uninstalled (a pending trigger delivery with a copy).
    created = await client.post(
        owned_url(tenant),
        json=app_payload(
            trigger_conditions=["uninstall"],
            trigger_url="https://apps.example.com/trigger",
            is_available_to_anyone=True,
        ),
        headers=tenant.headers,
    )
    assert created.status_code == 201
    app_id = created.json()["id"]
    first = created.json()["secret"]
    rotated = await client.post(
        owned_url(tenant, app_id, "/rotate_secret"),
        json={"grace_period_seconds": 3600},
        headers=tenant.headers,
    )
    second = rotated.json()["secret"]
    # An app written through the ORM too.
    orm_app = await make_app(session, tenant.organization)
    installer = await make_installer(session)
    app = await session.get(App, uuid.UUID(app_id))
    assert app is not None
    app.is_approved = True  # public: another organization may install it
    await session.flush()
    installation = await install_directly(session, installer, app)
    await uninstall(session=session, installation=installation, actor_user_id=installer.user.id)
    await session.flush()
    (trigger,) = (
        await session.execute(select(OutboundDelivery).where(OutboundDelivery.app_id == app.id))
    ).scalars()
    assert trigger.kind == "trigger" and trigger.signing_secret == second  # plaintext in Python

    dump = await _all_tables_as_text(connection)
    assert app_id in dump  # the rows are there...
    for secret in (first, second, orm_app.secret):
        assert secret not in dump  # ...but no secret in any table
    stored = (
        await connection.execute(
            text("SELECT secret, previous_secret FROM apps WHERE id = :id"), {"id": uuid.UUID(app_id)}
        )
    ).one()
    copy = (
        await connection.execute(
            text("SELECT signing_secret FROM outbound_deliveries WHERE id = :id"), {"id": trigger.id}
        )
    ).scalar_one()
    assert all(value.startswith(PREFIX) for value in (*stored, copy))
    # And the service still works with them: the owner reads the secret, the API decrypts it.
    got = await client.get(owned_url(tenant, app_id), headers=tenant.headers)
    assert got.json()["secret"] == second


async def test_ciphertexts_are_authenticated_and_bound_to_their_key() -> None:
    one, two = Keyring.parse(new_encryption_key()), Keyring.parse(new_encryption_key())
    sealed = one.encrypt("a secret")
    assert sealed.startswith(f"{PREFIX}{one.primary_id}:") and "a secret" not in sealed
    assert one.encrypt("a secret") != sealed  # a fresh nonce each time
    assert one.decrypt(sealed) == "a secret"
    with pytest.raises(Exception, match="no configured encryption key"):
        two.decrypt(sealed)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        one.decrypt(tampered)
    assert one.decrypt("plaintext from before") == "plaintext from before"


def _cli(*args: str, keys: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "apps_api", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "APPS_API_ENCRYPTION_KEYS": keys},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


@pytest.mark.subprocess
async def test_admin_reencrypt_moves_every_secret_to_the_first_key(
    engine: AsyncEngine, settings: Settings
) -> None:
    old_key = settings.encryption_keys or ""
    new_key = new_encryption_key()
    owner = await committed_tenant(engine, "Reencrypt")
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            app = await make_app(session, owner.organization, previous_secret="p" * 64)
            plain = await make_app(session, owner.organization)
        async with AsyncSession(engine) as session, session.begin():
            # A row from before encryption at rest: plaintext in the column.
            await session.execute(
                text("UPDATE apps SET secret = :s WHERE id = :id"), {"s": "q" * 64, "id": plain.id}
            )

        result = _cli("admin", "reencrypt", keys=f"{new_key},{old_key}")
        counts = result["reencrypted"]
        assert isinstance(counts, dict) and counts["apps"] >= 2

        async with engine.connect() as connection:
            rows = {
                row.id: row
                for row in await connection.execute(
                    text("SELECT id, secret, previous_secret FROM apps WHERE id IN (:a, :b)"),
                    {"a": app.id, "b": plain.id},
                )
            }
        new_only = Keyring.parse(new_key)
        new_id = key_id(new_only.keys[0])
        assert rows[app.id].secret.startswith(f"{PREFIX}{new_id}:")
        assert rows[app.id].previous_secret.startswith(f"{PREFIX}{new_id}:")
        assert new_only.decrypt(rows[app.id].secret) == app.secret
        assert new_only.decrypt(rows[app.id].previous_secret) == "p" * 64
        assert new_only.decrypt(rows[plain.id].secret) == "q" * 64
        # Nothing left under the old key: it can be dropped. Run again: nothing to do.
        again = _cli("admin", "reencrypt", keys=f"{new_key},{old_key}")
        assert again["reencrypted"] == {"apps": 0, "outbound_deliveries": 0}
    finally:
        # Back to this run's key, for the other tests (and the other tests' committed rows).
        _cli("admin", "reencrypt", keys=f"{old_key},{new_key}")
        configure_encryption(old_key)
        await delete_organizations(engine, [owner.org_id])


async def test_the_migration_encrypts_plaintext_rows(database_server_url: str, settings: Settings) -> None:
    from apps_api.migrate import upgrade
    from tests.conftest import _with_database

    name = f"apps_api_migration_{uuid.uuid4().hex[:8]}"
    admin_url = _with_database(database_server_url, "postgres").replace("postgresql+asyncpg", "postgresql")
    plain_url = _with_database(database_server_url, name).replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(upgrade, _with_database(database_server_url, name), "0005_sec")
        connection = await asyncpg.connect(plain_url)
        try:
            org = uuid.uuid4()
            await connection.execute(
                "INSERT INTO organizations (id, name, features, subscription_active, created_at, updated_at) "
                "VALUES ($1, 'Old', '{}', true, now(), now())",
                org,
            )
            row = with_column_defaults(
                cast(Table, App.__table__),
                {
                    "owned_by_organization_id": org,
                    "name": "Old app",
                    "description": "d",
                    "terms_of_service_url": "https://e.com/t",
                    "privacy_policy_url": "https://e.com/p",
                    "secret": "plain-secret-before-encryption",
                },
            )
            placeholders = ", ".join(f"${i + 1}" for i in range(len(row)))
            insert = f"INSERT INTO apps ({', '.join(row)}) VALUES ({placeholders})"  # noqa: S608 - column names
            await connection.execute(insert, *row.values())
            await asyncio.to_thread(upgrade, _with_database(database_server_url, name), "head")
            stored = await connection.fetchval("SELECT secret FROM apps")
        finally:
            await connection.close()
        assert stored.startswith(PREFIX) and "plain-secret" not in stored
        assert Keyring.parse(settings.encryption_keys).decrypt(stored) == "plain-secret-before-encryption"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_installing_keeps_the_app_object_plaintext(session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_app(session, owner.organization, is_available_to_anyone=True, is_approved=True)
    secret = app.secret
    await install_directly(session, installer, app)
    # install_app refreshes the caller's object from a raw row: still the plaintext secret.
    assert app.secret == secret and not secret.startswith(PREFIX)
    await session.execute(update(App).where(App.id == app.id).values(name="renamed"))


async def test_reencrypt_goes_through_every_batch(
    session: AsyncSession, settings: Settings, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of one row: a full batch means more may follow, only a short one ends it. In the
    test's transaction, so every rewrite (other tests' committed rows too) is rolled back."""
    old_key = settings.encryption_keys or ""
    new_key = new_encryption_key()
    apps = [await make_app(session, tenant.organization) for _ in range(3)]
    monkeypatch.setattr(secrets_module, "_REENCRYPT_BATCH", 1)
    configure_encryption(f"{new_key},{old_key}")
    try:
        counts = await secrets_module.reencrypt_secrets(session=session)
        assert counts["apps"] >= 3
        stored = await session.execute(
            text("SELECT secret FROM apps WHERE id = ANY(:ids)"), {"ids": [app.id for app in apps]}
        )
        new_id = key_id(Keyring.parse(new_key).keys[0])
        assert all(secret.startswith(f"{PREFIX}{new_id}:") for (secret,) in stored)
        assert (await secrets_module.reencrypt_secrets(session=session))["apps"] == 0
    finally:
        configure_encryption(old_key)


def test_a_value_stored_by_an_earlier_release_still_decrypts() -> None:
    """A fixed key and a ciphertext written with it (release 0.2.0): the stored format, the key
    id (8 hex characters of the key's SHA-256) and the AAD must not change, or every secret
    already in a database becomes unreadable."""
    from apps_api.kit.crypto import Keyring

    keyring = Keyring.parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    assert keyring.primary_id == "630dcd29"
    stored = "enc:v1:630dcd29:nZV3kSIDqXAa6J4KpKZlMJ9DN2umBMTIgmZ_Wa8EHv6atqiQjFdP3ZQV"
    assert keyring.decrypt(stored) == "the app secret"
    assert keyring.is_current(stored)


def _key_text(raw: bytes, *, padded: bool = True) -> str:
    text = base64.urlsafe_b64encode(raw).decode()
    return text if padded else text.rstrip("=")


def test_a_key_is_32_bytes_of_url_safe_base64_with_or_without_its_padding() -> None:
    """Operators paste keys from many tools, some of which drop base64's `=` padding; a key of
    another length is refused for its length (AES-128 or -192 would be a weaker cipher, silently),
    and text that is not base64 for that."""
    raw = os.urandom(32)
    assert Keyring.parse(_key_text(raw, padded=False)).keys == (raw,)
    assert Keyring.parse(f" {_key_text(raw)} ").keys == (raw,)
    # Padded and unpadded: without padding the decoder must be given the right amount back.
    for size in (16, 24, 31, 33, 37, 48, 64):
        for padded in (True, False):
            with pytest.raises(ValueError, match=r"\(AES-256\)"):
                Keyring.parse(_key_text(os.urandom(size), padded=padded))
    for not_base64 in ("é" * 43, "A", "A" * 41):
        with pytest.raises(ValueError, match=r"URL-safe base64 of 32 bytes$"):
            Keyring.parse(not_base64)


def test_each_key_decrypts_what_names_its_id_and_no_other() -> None:
    """Two keys in the order of their ids, so that a comparison of ids looser than equality
    picks the wrong key whichever way it leans; the first key is the one that encrypts."""
    low, high = sorted((os.urandom(32), os.urandom(32)), key=key_id)
    under_low, under_high = Keyring((low,)).encrypt("low's"), Keyring((high,)).encrypt("high's")
    with pytest.raises(EncryptionKeyMissing, match=key_id(high)):
        Keyring((low,)).decrypt(under_high)
    with pytest.raises(EncryptionKeyMissing, match=key_id(low)):
        Keyring((high,)).decrypt(under_low)
    for first, second in ((low, high), (high, low)):
        both = Keyring((first, second))
        assert both.decrypt(under_low) == "low's" and both.decrypt(under_high) == "high's"
        assert both.primary_id == key_id(first)
        sealed = both.encrypt("rotated")
        assert sealed.startswith(f"{PREFIX}{key_id(first)}:")
        assert Keyring((first,)).decrypt(sealed) == "rotated"  # the first key alone reads it


def test_only_a_value_under_the_first_key_is_current() -> None:
    """`reencrypt` rewrites what is not current: a value under an older key, or plaintext."""
    first, older = os.urandom(32), os.urandom(32)
    keyring = Keyring((first, older))
    assert keyring.is_current(Keyring((first,)).encrypt("s"))
    assert not keyring.is_current(Keyring((older,)).encrypt("s"))
    assert not keyring.is_current("plaintext from before")
    assert not Keyring(()).is_current("plaintext from before")


def test_unconfigured_the_keys_follow_the_settings_parsed_once_per_value(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `configure_encryption` (a script, a shell), `keyring()` reads the process's current
    settings; it parses them again only when they change, in whichever direction (the keys' text
    is compared, and may sort before or after the previous one)."""
    one, two = sorted((new_encryption_key(), new_encryption_key()))
    current = {"settings": settings}
    monkeypatch.setattr(crypto, "_configured", None)
    monkeypatch.setattr(crypto, "_from_settings", None)
    monkeypatch.setattr(settings_module, "get_settings", lambda: current["settings"])
    for keys in (one, two, one, None, two):
        current["settings"] = settings.model_copy(update={"encryption_keys": keys})
        expected = Keyring.parse(keys)
        assert crypto.keyring() == expected
        assert crypto.keyring() is crypto.keyring()  # parsed once while the settings stay
    assert crypto.decrypt(crypto.encrypt("a secret")) == "a secret"


def test_statements_that_write_a_secret_keep_sqlalchemy_s_compiled_cache() -> None:
    """`EncryptedText.cache_ok`: without it SQLAlchemy compiles anew every statement that binds a
    secret (each app created, each secret rotated, each trigger delivery queued): no cache key."""
    statements = (
        insert(App).values(secret="s"),
        update(App).values(secret="s", previous_secret="p"),
        select(App.id).where(App.secret == "s"),
        insert(OutboundDelivery).values(signing_secret="s"),
    )
    for statement in statements:
        assert statement._generate_cache_key() is not None, statement
