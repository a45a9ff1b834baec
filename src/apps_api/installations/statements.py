"""The install path's statements, built once (every install runs them).

They run straight on the session's connection (kit/driver.py): the ORM's compile, bulk, loading
and synchronize machinery cost more CPU than these statements' round trips (the caller sets the
new count on a loaded app itself).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, Uuid, bindparam, insert, select, update

from apps_api.catalog.repository import APP_ROW_COLUMNS, APP_ROW_FROM
from apps_api.catalog.visibility import may_install
from apps_api.delivery.events import insert_events
from apps_api.kit.driver import CompiledStatement
from apps_api.models import App, AppInstallation

_APPS = cast(Table, App.__table__)
_INSTALLATIONS = cast(Table, AppInstallation.__table__)
LOCK_APP = CompiledStatement(
    select(_APPS.c.id).where(_APPS.c.id == bindparam("app_id")).with_for_update(key_share=True)
)
ADD_TO_INSTALLATION_COUNT = CompiledStatement(
    update(_APPS)
    .where(_APPS.c.id == bindparam("app_id"))
    .values(installation_count=_APPS.c.installation_count + bindparam("delta"), updated_at=_APPS.c.updated_at)
    .returning(_APPS.c.installation_count)
)
INSTALLATION_COLUMNS = (
    "id",
    "app_id",
    "organization_id",
    "app_user_id",
    "allowed_scopes",
    "created_by_user_id",
    "created_at",
    "updated_at",
)
_INSTALL_WRITES: dict[int, CompiledStatement] = {}


def install_writes(event_count: int) -> CompiledStatement:
    """The installation row, the app's counter and the events, in one statement (one round trip).

    Data-modifying CTEs: all or nothing, and the unique (app_id, organization_id) constraint
    still decides between concurrent installs (the statement fails, no event is written).
    """
    statement = _INSTALL_WRITES.get(event_count)
    if statement is None:
        installation = insert(_INSTALLATIONS).values(
            {column: bindparam(column) for column in INSTALLATION_COLUMNS}
        )
        counter = (
            update(_APPS)
            .where(_APPS.c.id == bindparam("app_id"))
            .values(
                installation_count=_APPS.c.installation_count + bindparam("delta"),
                updated_at=_APPS.c.updated_at,
            )
        )
        statement = _INSTALL_WRITES[event_count] = CompiledStatement(
            insert_events(event_count).add_cte(installation.cte("installation"), counter.cte("counter"))
        )
    return statement


# The organization is a bind parameter, so "may install" takes its one-app form
# (primary-key probes of partnerships and shares for this row). The app's whole row with what
# its view embeds: the installation's view is built from it.
INSTALLABLE_APP = CompiledStatement(
    select(*APP_ROW_COLUMNS)
    .select_from(APP_ROW_FROM)
    .where(_APPS.c.id == bindparam("app_id"), may_install(bindparam("organization_id", type_=Uuid)))
)
