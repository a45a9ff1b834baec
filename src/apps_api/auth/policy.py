"""Who may read what: the one rule behind REST reads and event delivery (docs/permissions.md).

A collection belongs to an organization and to a channel family:

- **provider** collections, `/api/v5/orgs/{O}/owned_apps/...` (owned apps, their installations,
  webhooks, log entries, shares, secrets): O's own provider data. Only O's users with `settings`
  read them; an app principal never does, whatever its scopes.
- **organization** collections, every other `/api/v5/orgs/{O}/...` channel (installations,
  installed apps, users, and what other services publish): O's data, readable by O's callers
  holding the collection's scope (`settings` for the service's own, `users` for users, the
  `required_scope` an ingested event names). An app reads them through its installation in O,
  with the installation's `allowed_scopes`.
- **user** collections, `/api/v5/users/{U}/...`: like organization collections, in the event's
  organization.

REST routes ask `refusal()` through `auth.dependencies` (a 403 with its reason). Event matching
(`delivery/matching.py`) asks `may_read()` on behalf of the webhook's reader: for organization
and user channels the installation's app principal (its organization, its `allowed_scopes`), for
provider channels the app's provider (its owner organization, reading as a user with `settings`).
So an app's webhook hears an event only if the principal it reads with gets 200 on the channel's
collection; `tests/auth/test_access_policy.py` checks the two against each other case by case.

This module imports nothing of the service: it decides on plain values only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

SETTINGS = "settings"
USERS = "users"


class Family(StrEnum):
    PROVIDER = "provider"
    ORGANIZATION = "organization"
    USER = "user"


class Reader(Protocol):
    """A caller as the policy sees it (`auth.service.Principal` is one)."""

    @property
    def organization_id(self) -> uuid.UUID: ...

    @property
    def is_app(self) -> bool: ...

    def has_permission(self, permission: str) -> bool: ...


@dataclass(frozen=True)
class Collection:
    """What is read: a family's collection of one organization, needing `scope`."""

    family: Family
    organization_id: uuid.UUID
    scope: str | None


@dataclass(frozen=True)
class ProviderReader:
    """An app's provider: its owner organization, reading its own data as a user with `settings`."""

    organization_id: uuid.UUID
    is_app: bool = False

    def has_permission(self, permission: str) -> bool:
        return permission == SETTINGS


def family_of(channel: str) -> Family:
    """The family of a concrete channel (or of a route's path)."""
    parts = channel.strip("/").split("/")
    if parts[:3] == ["api", "v5", "orgs"] and parts[4:5] == ["owned_apps"]:
        return Family.PROVIDER
    if parts[:3] == ["api", "v5", "users"]:
        return Family.USER
    return Family.ORGANIZATION


def collection_of(*, channel: str, organization_id: uuid.UUID, scope: str | None) -> Collection:
    """The collection an event of `channel` in `organization_id` belongs to."""
    family = family_of(channel)
    return Collection(family, organization_id, SETTINGS if family is Family.PROVIDER else scope)


def missing_permission(reader: Reader, permission: str) -> str:
    """What is missing and who can grant it (a user's permission, an installation's scope)."""
    if reader.is_app:
        return (
            f"The app's installation was not granted the `{permission}` scope; a user of the "
            "organization who has it can install the app again with that scope."
        )
    return f"You do not have the `{permission}` permission; your administrator can grant it."


def refusal(reader: Reader, collection: Collection) -> str | None:
    """Why `reader` may not read `collection` (a 403's detail), or None when it may.

    The order is docs/design.md section 4's: the organization, then the permission, then (provider
    collections) the kind of caller.
    """
    if reader.organization_id != collection.organization_id:
        return "You do not have access to this organization."
    if collection.scope is not None and not reader.has_permission(collection.scope):
        return missing_permission(reader, collection.scope)
    if collection.family is Family.PROVIDER and reader.is_app:
        return "Apps cannot access app provider resources."
    return None


def may_read(reader: Reader, collection: Collection) -> bool:
    """Whether `reader` may read `collection`."""
    return refusal(reader, collection) is None


def reader_for_event(
    *, collection: Collection, app_owner_id: uuid.UUID, installation: Reader | None
) -> Reader | None:
    """Who an app's webhook reads an event's collection as (None: nobody, so it hears nothing).

    Provider data is the provider's own: its app reads it as the provider, whether or not the
    app is installed anywhere. Organization and user data reach an app only through its
    installation in that organization, as the installation's principal (an app principal
    bound to the installation's organization, with its `allowed_scopes`).
    """
    if collection.family is Family.PROVIDER:
        return ProviderReader(app_owner_id)
    return installation


def missing_grants(*, granter: Reader | None, scopes: frozenset[str]) -> list[str]:
    """The scopes a granter lacks (no grant beyond the granter); None is the operator, who lacks none."""
    if granter is None:
        return []
    return sorted(scope for scope in scopes if not granter.has_permission(scope))
