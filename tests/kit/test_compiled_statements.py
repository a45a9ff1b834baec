"""kit/driver.CompiledStatement: statements sent straight to asyncpg, in the session's transaction."""

from __future__ import annotations

import uuid
from typing import cast

import pytest
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.kit.driver import CompiledStatement, with_column_defaults
from apps_api.models import Organization

_ORGANIZATIONS = cast(Table, Organization.__table__)
_INSERT = CompiledStatement(
    insert(_ORGANIZATIONS).values({column.key: bindparam(column.key) for column in _ORGANIZATIONS.c})
)
_INSERT_RETURNING = CompiledStatement(
    insert(_ORGANIZATIONS)
    .values({column.key: bindparam(column.key) for column in _ORGANIZATIONS.c})
    .returning(_ORGANIZATIONS.c.id)
)
_EXISTS = select(_ORGANIZATIONS.c.id).where(_ORGANIZATIONS.c.name.like(bindparam("prefix") + "%"))


def _organization(prefix: str) -> dict[str, object]:
    return with_column_defaults(_ORGANIZATIONS, {"name": f"{prefix}{uuid.uuid4().hex}"})


async def _names_stored(engine: AsyncEngine, prefix: str) -> int:
    async with engine.connect() as connection:
        return len((await connection.execute(_EXISTS, {"prefix": prefix})).all())


async def test_every_statement_runs_in_the_session_transaction(engine: AsyncEngine) -> None:
    prefix = f"session-statement-{uuid.uuid4().hex}-"
    async with AsyncSession(engine) as session:
        # The first statement of the transaction (SQLAlchemy sends BEGIN), then one on the driver.
        assert await _INSERT.fetch(session, **_organization(prefix)) == []
        rows = await _INSERT_RETURNING.fetch(session, **_organization(prefix))
        assert len(rows) == 1
        await session.rollback()
    assert await _names_stored(engine, prefix) == 0

    async with AsyncSession(engine) as session:
        await _INSERT.fetch(session, **_organization(prefix))
        await _INSERT.fetch(session, **_organization(prefix))
        await session.commit()
    assert await _names_stored(engine, prefix) == 2
    async with engine.begin() as connection:
        await connection.execute(_ORGANIZATIONS.delete().where(_ORGANIZATIONS.c.name.like(prefix + "%")))


async def test_errors_are_sqlalchemy_errors(engine: AsyncEngine) -> None:
    prefix = f"session-statement-{uuid.uuid4().hex}-"
    values = _organization(prefix)
    async with AsyncSession(engine) as session:
        await _INSERT.fetch(session, **values)
        with pytest.raises(IntegrityError) as raised:
            await _INSERT.fetch(session, **values)  # on the driver: the same primary key
        assert "pk_organizations" in str(raised.value.orig)
        await session.rollback()
        # The session goes on after its rollback.
        await _INSERT.fetch(session, **_organization(prefix))
        await session.rollback()
    assert await _names_stored(engine, prefix) == 0


def test_column_defaults_as_an_insert_applies_them() -> None:
    row = with_column_defaults(_ORGANIZATIONS, {"name": "x"})
    assert set(row) == {column.key for column in _ORGANIZATIONS.c}
    assert row["name"] == "x" and row["features"] == [] and row["subscription_active"] is True
    assert isinstance(row["id"], uuid.UUID) and row["created_at"].tzinfo is not None
    assert row["subscription_expires_at"] is None
