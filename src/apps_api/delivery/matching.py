"""Channel patterns: validation, compilation into per-app tries, event matching (docs/design.md section 8).

An event in organization O reaches webhook W of app A when A is installed in O (or, for
the owner's installations channel, O owns A), a subscription of W matches the channel with
the placeholders bound for that installation, the action's flag is set, and A may read the
event's collection by `auth.policy`, the rule of the REST routes: as the installation's
principal (its allowed scopes cover the event's scope) for O's data, as its provider (O owns
A) for O's `owned_apps/...` channels, which no third-party app hears. "Installed" is as the
event's writer saw it: see `Snapshot`; a `removed` reaches the installation it removes, an event
written before an install committed never reaches the new installation.

Matching never scans every subscription: each app's patterns are compiled into a trie of
path segments, and an event only walks the tries of the apps installed in its organization
(plus, on an installations channel, the one app named in it). Cost per event is
proportional to the installations of that organization times the channel's depth, not to
the number of subscriptions in the system.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from apps_api.auth.policy import Collection, ProviderReader, collection_of, may_read, reader_for_event

ORGANIZATION_ID = "{organization_id}"
USER_ID = "{user_id}"
APP_ORGANIZATION_ID = "{app_organization_id}"
APP_ID = "{app_id}"
PLACEHOLDERS = (ORGANIZATION_ID, USER_ID, APP_ORGANIZATION_ID, APP_ID)
WILDCARD = "*"
ORG_PREFIX = "/api/v5/orgs/{organization_id}/"
USER_PREFIX = "/api/v5/users/{user_id}/"
INSTALLATIONS_PATTERN = "/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations"
MAX_PATTERN_LENGTH = 500
_LITERAL = re.compile(r"^[A-Za-z0-9._~\-]+$")
_INSTALLATIONS_CHANNEL = re.compile(
    r"^/api/v5/orgs/(?P<owner>[0-9a-f-]{36})/owned_apps/(?P<app>[0-9a-f-]{36})/installations$"
)
ACTION_FLAGS = {
    "added": "is_additions_subscribed",
    "changed": "is_changes_subscribed",
    "removed": "is_removals_subscribed",
}


def pattern_error(pattern: str) -> str | None:
    """Why a channel pattern is not allowed, or None when it is."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"Must be at most {MAX_PATTERN_LENGTH} characters."
    if pattern == INSTALLATIONS_PATTERN:
        return None
    if not (pattern.startswith(ORG_PREFIX) or pattern.startswith(USER_PREFIX)):
        return f"Must start with `{ORG_PREFIX}` or `{USER_PREFIX}`, or equal `{INSTALLATIONS_PATTERN}`."
    rest = pattern.removeprefix(ORG_PREFIX) if pattern.startswith(ORG_PREFIX) else pattern[len(USER_PREFIX) :]
    if not rest:
        return "Must name at least one segment after the prefix."
    return next(filter(None, map(_segment_error, rest.split("/"))), None)


def _segment_error(segment: str) -> str | None:
    """Why one segment after the prefix is not allowed, or None when it is."""
    if not segment:
        return "Must not contain empty segments (`//` or a trailing `/`)."
    if segment == WILDCARD or segment in PLACEHOLDERS or _LITERAL.match(segment):
        return None
    return (
        f"Segment `{segment}` is not allowed: a segment is a literal (letters, digits, `-._~`), "
        f"`*`, or one of {', '.join(f'`{p}`' for p in PLACEHOLDERS)}."
    )


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/"))


@dataclass(frozen=True)
class Subscription:
    """One compiled channel subscription of a webhook."""

    webhook_id: uuid.UUID
    channel_pattern: str
    is_additions_subscribed: bool
    is_changes_subscribed: bool
    is_removals_subscribed: bool

    def wants(self, action: str) -> bool:
        flag = ACTION_FLAGS.get(action)
        return bool(flag and getattr(self, flag))


@dataclass
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    wildcard: _Node | None = None
    placeholders: dict[str, _Node] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)


class AppMatcher:
    """The channel patterns of one app's webhooks, compiled into a segment trie."""

    __slots__ = ("_root", "endpoints")

    def __init__(
        self, subscriptions: Iterable[Subscription] = (), endpoints: Mapping[uuid.UUID, str] | None = None
    ) -> None:
        self._root = _Node()
        # webhook id -> endpoint URL, as loaded with the subscriptions.
        self.endpoints: dict[uuid.UUID, str] = dict(endpoints or {})
        for subscription in subscriptions:
            self.add(subscription)

    def add(self, subscription: Subscription) -> None:
        node = self._root
        for segment in split_path(subscription.channel_pattern):
            if segment == WILDCARD:
                node.wildcard = node.wildcard or _Node()
                node = node.wildcard
            elif segment in PLACEHOLDERS:
                node = node.placeholders.setdefault(segment, _Node())
            else:
                node = node.literals.setdefault(segment, _Node())
        node.subscriptions.append(subscription)

    def match(self, segments: Sequence[str], bindings: Mapping[str, str | None]) -> Iterator[Subscription]:
        """Subscriptions whose pattern matches the concrete channel under these placeholder values."""
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        depth = len(segments)
        while stack:
            node, index = stack.pop()
            if index == depth:
                yield from node.subscriptions
                continue
            segment = segments[index]
            child = node.literals.get(segment)
            if child is not None:
                stack.append((child, index + 1))
            if node.wildcard is not None:
                stack.append((node.wildcard, index + 1))
            for name, placeholder_child in node.placeholders.items():
                if bindings.get(name) == segment:
                    stack.append((placeholder_child, index + 1))


@dataclass(frozen=True)
class InstallationView:
    """What matching needs of an installation of app `app_id` in `organization_id`.

    `installed_xact_id` is the transaction that created it (None: unknown, always visible);
    `removed_xact_id` the one that deleted it (None: still installed).
    """

    id: uuid.UUID
    app_id: uuid.UUID
    organization_id: uuid.UUID
    app_user_id: uuid.UUID | None
    allowed_scopes: frozenset[str]
    app_owner_id: uuid.UUID
    installed_xact_id: int | None = None
    removed_xact_id: int | None = None
    # As an `auth.policy.Reader`: the installation's app principal.
    is_app: ClassVar[bool] = True

    def has_permission(self, permission: str) -> bool:
        return permission in self.allowed_scopes


@dataclass(frozen=True)
class Snapshot:
    """A PostgreSQL snapshot (`pg_current_snapshot()`, `xmin:xmax:xip,...`) and its owner's transaction.

    `sees(x)` is PostgreSQL's own rule: what transaction x wrote is visible to the snapshot's
    statement when x committed before the statement began, or when x is the statement's own.
    """

    xact_id: int
    xmin: int
    xmax: int
    in_progress: frozenset[int]

    @classmethod
    def parse(cls, xact_id: int, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(xact_id, int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xact_id: int) -> bool:
        if xact_id == self.xact_id:
            return True
        if xact_id < self.xmin:
            return True
        return xact_id < self.xmax and xact_id not in self.in_progress


@dataclass(frozen=True)
class EventView:
    organization_id: uuid.UUID
    channel: str
    action: str
    required_scope: str | None = None
    # None (events written before snapshots were recorded): the installations present now.
    snapshot: Snapshot | None = None


def was_installed(event: EventView, installation: InstallationView) -> bool:
    """Whether the installation existed for the event's writer.

    A removal by the event's own transaction does not count: an uninstall writes its `removed`
    events before it deletes the row, so they reach the installation they remove.
    """
    snapshot = event.snapshot
    if snapshot is None:
        return installation.removed_xact_id is None
    if installation.installed_xact_id is not None and not snapshot.sees(installation.installed_xact_id):
        return False
    removed = installation.removed_xact_id
    return removed is None or removed == snapshot.xact_id or not snapshot.sees(removed)


@dataclass(frozen=True)
class Match:
    """Webhook `webhook_id` of `app_id` gets the event, for `installation` (None: the owner's channel)."""

    webhook_id: uuid.UUID
    app_id: uuid.UUID
    installation: InstallationView | None


def installations_channel_app(channel: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(owner id, app id) when the channel is an owned app's installations channel."""
    found = _INSTALLATIONS_CHANNEL.match(channel)
    if found is None:
        return None
    try:
        return uuid.UUID(found["owner"]), uuid.UUID(found["app"])
    except ValueError:
        return None


def bindings_for(installation: InstallationView) -> dict[str, str | None]:
    return {
        ORGANIZATION_ID: str(installation.organization_id),
        USER_ID: str(installation.app_user_id) if installation.app_user_id else None,
        APP_ORGANIZATION_ID: str(installation.app_owner_id),
        APP_ID: str(installation.app_id),
    }


def match_event(
    event: EventView,
    *,
    installations: Iterable[InstallationView],
    matchers: Mapping[uuid.UUID, AppMatcher],
    owned_app: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> list[Match]:
    """The webhooks an event reaches: at most one per (app, endpoint URL), see `_one_per_endpoint()`.

    `installations` are those of the event's organization, removed ones included (see
    `was_installed()`); `owned_app` is (owner id, app id) of the app named by an installations
    channel when the event's organization owns it: the provider's own data, so no installer
    scope applies on that path.
    """
    segments = split_path(event.channel)
    collection = collection_of(
        channel=event.channel, organization_id=event.organization_id, scope=event.required_scope
    )
    found: dict[uuid.UUID, Match] = {}
    for installation in installations:
        matcher = matchers.get(installation.app_id)
        if matcher is not None and _hears(event, collection, installation):
            for subscription in matcher.match(segments, bindings_for(installation)):
                if subscription.wants(event.action):
                    match = Match(subscription.webhook_id, installation.app_id, installation)
                    found.setdefault(subscription.webhook_id, match)
    if owned_app is not None and may_read(ProviderReader(owned_app[0]), collection):
        _match_owner(event, segments, owned_app, matchers, found)
    if len(found) < 2:
        return list(found.values())
    return _one_per_endpoint(found, matchers)


def _one_per_endpoint(
    found: Mapping[uuid.UUID, Match], matchers: Mapping[uuid.UUID, AppMatcher]
) -> list[Match]:
    """One match per (app, endpoint URL), the matching webhook with the smallest id.

    An app's webhooks may all name one URL: sending the event once per webhook would let one
    API call fan out to that URL as many times as the app has webhooks (issue 24). A webhook
    whose URL the matcher does not know stands for itself.
    """
    chosen: dict[tuple[uuid.UUID, object], Match] = {}
    for webhook_id in sorted(found):
        match = found[webhook_id]
        endpoint = matchers[match.app_id].endpoints.get(webhook_id, webhook_id)
        chosen.setdefault((match.app_id, endpoint), match)
    return list(chosen.values())


def _hears(event: EventView, collection: Collection, installation: InstallationView) -> bool:
    """Whether the installation was there for the event and its app may read the event's
    collection (`auth.policy`: as the installation's principal, or as its provider)."""
    if installation.organization_id != event.organization_id or not was_installed(event, installation):
        return False
    reader = reader_for_event(
        collection=collection, app_owner_id=installation.app_owner_id, installation=installation
    )
    return reader is not None and may_read(reader, collection)


def _match_owner(
    event: EventView,
    segments: Sequence[str],
    owned_app: tuple[uuid.UUID, uuid.UUID],
    matchers: Mapping[uuid.UUID, AppMatcher],
    found: dict[uuid.UUID, Match],
) -> None:
    """The owner's own webhooks on its app's installations channel (no installation involved)."""
    owner_id, app_id = owned_app
    matcher = matchers.get(app_id)
    if matcher is None:
        return
    bindings = {APP_ORGANIZATION_ID: str(owner_id), APP_ID: str(app_id)}
    for subscription in matcher.match(segments, bindings):
        if subscription.channel_pattern == INSTALLATIONS_PATTERN and subscription.wants(event.action):
            found.setdefault(subscription.webhook_id, Match(subscription.webhook_id, app_id, None))
