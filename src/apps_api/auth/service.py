"""Resolve credentials to a principal."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Final, Literal, TypeVar, cast

from sqlalchemy import bindparam, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from apps_api.auth.principal_cache import PrincipalCache
from apps_api.kit.driver import CompiledStatement, Database
from apps_api.kit.security import digest
from apps_api.models import ApiToken, AppInstallation, Organization, User
from apps_api.models.base import Base, utcnow
from apps_api.models.organization import subscription_is_active

Model = TypeVar("Model", bound=Base)


# The kinds of principal (docs/permissions.md):
USER: Final = "user"  # a user's API token: the user's permissions
APP_AS_USER: Final = "app_as_user"  # an app acting as the user who triggered it: user's permissions ∩ scopes
APP_USER: Final = "app_user"  # an app acting as its installation's app user: the installation's scopes
Kind = Literal["user", "app_as_user", "app_user"]


class Principal:
    """Who is calling: the kind of caller, the user, their organization and their permissions.

    Decided once per request (`auth.dependencies.identify`); routes only check it. An app
    principal (`is_app`) is bound to the installing organization and its permissions are cut
    down to the installation's `allowed_scopes`.

    The access checks read plain values (`user_id`, `organization_id`, `has_permission`,
    `has_active_subscription`). `user` and `organization` are the session's ORM objects; a
    principal built from the token row attaches them only when something asks (the writes):
    building and attaching them on every read was measurable (bench/ANALYSIS.md).
    """

    __slots__ = (
        "_organization",
        "_permissions",
        "_row",
        "_session",
        "_user",
        "app_id",
        "installation_id",
        "kind",
        "organization_id",
        "token_id",
        "user_id",
    )

    def __init__(
        self,
        *,
        user: User,
        organization: Organization,
        token_id: uuid.UUID | None = None,
        kind: Kind = USER,
        app_id: uuid.UUID | None = None,
        installation_id: uuid.UUID | None = None,
        allowed_scopes: Iterable[str] = (),
    ) -> None:
        self._user: User | None = user
        self._organization: Organization | None = organization
        self._row: Any = None
        self._session: AsyncSession | None = None
        self.user_id: uuid.UUID = user.id
        self.organization_id: uuid.UUID = organization.id
        self.token_id = token_id
        self.kind: Kind = kind
        # The installation an app principal acts for (None for a user).
        self.app_id = app_id
        self.installation_id = installation_id
        self._permissions = _permissions_of(kind, user.permissions, allowed_scopes)

    @classmethod
    def of_token_row(cls, *, session: Database, row: Any) -> Principal:
        """The principal of a `_TOKEN_PRINCIPAL` row; its ORM objects are attached on first use."""
        installation_id = row["installation_id"]
        # A token of an installation's app user (minted by /identity/token or by the provider
        # through app_user_tokens, or by an operator) is that app acting as its app user.
        return cls.of_row(
            session=session,
            row=row,
            kind=USER if installation_id is None else APP_USER,
            token_id=row["id"],
            app_id=row["installation_app_id"],
            installation_id=installation_id,
            allowed_scopes=row["installation_allowed_scopes"] or (),
        )

    @classmethod
    def of_row(
        cls,
        *,
        session: Database,
        row: Any,
        kind: Kind,
        token_id: uuid.UUID | None = None,
        app_id: uuid.UUID | None,
        installation_id: uuid.UUID | None,
        allowed_scopes: Iterable[str],
    ) -> Principal:
        """The principal of a row of `principal_columns()`; its ORM objects are attached on first
        use, in a write's session (a read has none: it never asks)."""
        principal = cls.__new__(cls)
        principal._user = principal._organization = None
        principal._row = row
        principal._session = session if isinstance(session, AsyncSession) else None
        principal.user_id, principal.organization_id = row["user_id"], row["organization_id"]
        principal.token_id = token_id
        principal.installation_id = installation_id
        principal.kind = kind
        principal.app_id = app_id
        principal._permissions = _permissions_of(kind, row["user_permissions"], allowed_scopes)
        return principal

    @property
    def is_app(self) -> bool:
        """An app acting as a user or as its app user: bound to the installing organization, and
        never a provider (owned apps, their secrets, shares, webhooks, logs, installations)."""
        return self.kind != USER

    @property
    def user(self) -> User:
        if self._user is None:
            assert self._session is not None
            self._user = _persistent(self._session, User, self._row, "user_")
        return self._user

    @property
    def organization(self) -> Organization:
        if self._organization is None:
            assert self._session is not None
            self._organization = _persistent(self._session, Organization, self._row, "organization_")
        return self._organization

    def user_value(self, name: str) -> Any:
        """A column of the user, without attaching the ORM object."""
        return getattr(self._user, name) if self._user is not None else self._row["user_" + name]

    def organization_value(self, name: str) -> Any:
        """A column of the organization, without attaching the ORM object."""
        if self._organization is not None:
            return getattr(self._organization, name)
        return self._row["organization_" + name]

    @property
    def permissions(self) -> frozenset[str]:
        return self._permissions

    def has_permission(self, permission: str) -> bool:
        return permission in self._permissions

    def has_feature(self, feature: str) -> bool:
        return feature in self.organization_value("features")

    def has_active_subscription(self) -> bool:
        return subscription_is_active(
            self.organization_value("subscription_active"), self.organization_value("subscription_expires_at")
        )


def _permissions_of(
    kind: Kind, user_permissions: Iterable[str], allowed_scopes: Iterable[str]
) -> frozenset[str]:
    if kind == USER:
        return frozenset(user_permissions)
    if kind == APP_AS_USER:
        return frozenset(user_permissions) & frozenset(allowed_scopes)
    # The spec: the scopes "are needed for listening webhooks and for bot user permissions".
    return frozenset(allowed_scopes)


def _columns(model: type[Base], prefix: str) -> list[Any]:
    return [attribute.columns[0].label(prefix + attribute.key) for attribute in inspect(model).column_attrs]


def principal_columns() -> list[Any]:
    """The user's and organization's columns (`user_*`, `organization_*`) a principal is built from."""
    return [*_columns(User, "user_"), *_columns(Organization, "organization_")]


# Compiled once (every request not served by the principal cache runs it): the live token's
# user and organization in one indexed lookup. A Core row, not an ORM load of two entities on
# every request (bench/ANALYSIS.md). The installation whose app user the token's user is, if
# any, decides the kind of principal. The token's expiry is checked again at each cache hit.
_tokens, _users, _organizations = ApiToken.__table__, User.__table__, Organization.__table__
_installations = AppInstallation.__table__
_TOKEN_PRINCIPAL = CompiledStatement(
    select(
        _tokens.c.id,
        _tokens.c.expires_at.label("token_expires_at"),
        *principal_columns(),
        _installations.c.id.label("installation_id"),
        _installations.c.app_id.label("installation_app_id"),
        _installations.c.allowed_scopes.label("installation_allowed_scopes"),
    )
    .select_from(
        _tokens.join(_users, _users.c.id == _tokens.c.user_id)
        .join(_organizations, _organizations.c.id == _users.c.organization_id)
        .outerjoin(
            _installations,
            (_installations.c.app_user_id == _users.c.id)
            & (_installations.c.organization_id == _users.c.organization_id),
        )
    )
    .where(
        _tokens.c.key_digest == bindparam("digest"),
        _tokens.c.revoked_at.is_(None),
        (_tokens.c.expires_at.is_(None)) | (_tokens.c.expires_at > bindparam("now")),
        _users.c.deleted_at.is_(None),
    )
)


def _persistent(session: AsyncSession, model: type[Model], row: Any, prefix: str) -> Model:
    """The session's instance of the row's entity, as a query would have loaded it.

    An instance already in the identity map is returned as is; otherwise one is built from the
    row and attached as persistent and clean (`make_transient_to_detached`, then `add`): no SQL,
    nothing to flush, and later queries of the same row return this very object.
    """
    mapper = inspect(model)
    identity = mapper.identity_key_from_primary_key((row[prefix + "id"],))
    existing = session.sync_session.identity_map.get(identity)
    if existing is not None:
        return cast(Model, existing)
    instance = model(**{attribute.key: row[prefix + attribute.key] for attribute in mapper.column_attrs})
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


# Lookups without a cache (a cache never turned on).
_NO_CACHE = PrincipalCache(size=0, seconds=0)


async def authenticate_token(
    *, session: Database, key: str, cache: PrincipalCache | None = None
) -> Principal | None:
    """Return the principal of a live API token key, or None."""
    cache = _NO_CACHE if cache is None else cache
    key_digest = digest(key)
    row = cache.get(key_digest)
    if row is None:
        # Noted before the query: a change committed meanwhile empties the cache, and this
        # request's row, perhaps read before that change, is then not kept.
        generation = cache.generation
        rows = await _TOKEN_PRINCIPAL.fetch(session, digest=key_digest, now=utcnow())
        if not rows:
            return None
        row = rows[0]
        cache.put(key_digest, row, generation=generation, expires_at=row["token_expires_at"])
    return Principal.of_token_row(session=session, row=row)
