"""The engine's SQL column lists, taken from the table metadata in one place.

The hot statements are plain SQL on the driver (kit/driver.py); their column names and the
array types of their `unnest()` parameters come from here, so a column added to a model is
added to the statements that copy it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import String, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from apps_api.models import OutboundDelivery, WebhookLogEntry

DELIVERIES = cast(Table, OutboundDelivery.__table__)
ENTRIES = cast(Table, WebhookLogEntry.__table__)
# What a log entry copies of its delivery (both tables name these columns alike).
ENTRY_COPIES = ("app_id", "organization_id", "webhook_id", "endpoint_url", "action", "resource_id", "channel")
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def names(columns: Sequence[str], prefix: str = "") -> str:
    """`a, b, c` (or `p.a, p.b, p.c`), each checked against a table of the engine."""
    for column in columns:
        if column not in DELIVERIES.c and column not in ENTRIES.c:
            raise KeyError(f"no column {column}")
    return ", ".join(f"{prefix}{column}" for column in columns)


def array_type(table: Table, column: str) -> str:
    """The parameter array type of a column; JSONB travels as JSON text (kit/driver.py).

    Strings travel as text: a cast to varchar(n) would silently truncate, the column refuses.
    """
    sql_type = table.c[column].type
    if isinstance(sql_type, JSONB | String):
        return "text[]"
    return f"{sql_type.compile(dialect=_DIALECT).lower()}[]"


def unnest(table: Table, columns: Sequence[str], *, first: int = 1, alias: str = "v") -> str:
    """`unnest($1::uuid[], ...) AS v(id, ...)`: one array parameter per column, from `first`."""
    arrays = ", ".join(
        f"${number}::{array_type(table, column)}" for number, column in enumerate(columns, start=first)
    )
    return f"unnest({arrays}) AS {alias}({names(columns)})"


def values(table: Table, columns: Sequence[str], alias: str = "v") -> str:
    """The select list of `unnest()`'s columns, JSON text cast back to JSONB."""
    return ", ".join(
        f"{alias}.{column}::jsonb" if isinstance(table.c[column].type, JSONB) else f"{alias}.{column}"
        for column in columns
    )
