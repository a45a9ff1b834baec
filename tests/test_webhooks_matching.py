"""Matching rules of DESIGN.md section 8, on the compiled per-app tries (no database)."""

from __future__ import annotations

import uuid

from apps_api.delivery.matching import (
    INSTALLATIONS_PATTERN,
    AppMatcher,
    EventView,
    InstallationView,
    Subscription,
    installations_channel_app,
    match_event,
    pattern_error,
)

ORG = uuid.uuid4()
OTHER_ORG = uuid.uuid4()
OWNER = uuid.uuid4()
APP = uuid.uuid4()
APP_USER = uuid.uuid4()


def sub(
    webhook: uuid.UUID, pattern: str, added: bool = True, changed: bool = True, removed: bool = True
) -> Subscription:
    return Subscription(webhook, pattern, added, changed, removed)


def installation(
    organization_id: uuid.UUID = ORG,
    scopes: frozenset[str] = frozenset({"reports"}),
    app_user: uuid.UUID | None = APP_USER,
) -> InstallationView:
    return InstallationView(uuid.uuid4(), APP, organization_id, app_user, scopes, OWNER)


def matched(
    subscriptions: list[Subscription],
    event: EventView,
    installations: list[InstallationView],
    owned_app: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> set[uuid.UUID]:
    matchers = {APP: AppMatcher(subscriptions)}
    return {
        m.webhook_id
        for m in match_event(event, installations=installations, matchers=matchers, owned_app=owned_app)
    }


def test_placeholders_bind_to_the_installation() -> None:
    w_org, w_user, w_star, w_app, w_other = (uuid.uuid4() for _ in range(5))
    subscriptions = [
        sub(w_org, "/api/v5/orgs/{organization_id}/chats"),
        sub(w_user, "/api/v5/users/{user_id}/chats/*/messages"),
        sub(w_star, "/api/v5/orgs/{organization_id}/*"),
        sub(w_app, "/api/v5/orgs/{organization_id}/owned_apps/{app_id}/webhooks"),
        sub(w_other, "/api/v5/orgs/{organization_id}/users"),
    ]
    inst = installation()
    assert matched(subscriptions, EventView(ORG, f"/api/v5/orgs/{ORG}/chats", "added"), [inst]) == {
        w_org,
        w_star,
    }
    assert matched(
        subscriptions, EventView(ORG, f"/api/v5/users/{APP_USER}/chats/c1/messages", "added"), [inst]
    ) == {w_user}
    # `*` is exactly one segment.
    assert (
        matched(subscriptions, EventView(ORG, f"/api/v5/users/{APP_USER}/chats/messages", "added"), [inst])
        == set()
    )
    assert matched(subscriptions, EventView(ORG, f"/api/v5/orgs/{ORG}/chats/c1", "added"), [inst]) == set()
    # Another user's channel, another organization's path: no match.
    assert (
        matched(
            subscriptions, EventView(ORG, f"/api/v5/users/{uuid.uuid4()}/chats/c1/messages", "added"), [inst]
        )
        == set()
    )
    assert matched(subscriptions, EventView(ORG, f"/api/v5/orgs/{OTHER_ORG}/chats", "added"), [inst]) == set()
    assert matched(
        subscriptions, EventView(ORG, f"/api/v5/orgs/{ORG}/owned_apps/{APP}/webhooks", "changed"), [inst]
    ) == {w_app}
    assert (
        matched(
            subscriptions,
            EventView(ORG, f"/api/v5/orgs/{ORG}/owned_apps/{uuid.uuid4()}/webhooks", "changed"),
            [inst],
        )
        == set()
    )
    # No app user: `{user_id}` matches nothing.
    assert (
        matched(
            subscriptions,
            EventView(ORG, f"/api/v5/users/{APP_USER}/chats/c1/messages", "added"),
            [installation(app_user=None)],
        )
        == set()
    )


def test_events_reach_only_installations_in_the_event_organization() -> None:
    webhook = uuid.uuid4()
    subscriptions = [sub(webhook, "/api/v5/orgs/{organization_id}/chats")]
    event = EventView(ORG, f"/api/v5/orgs/{ORG}/chats", "added")
    assert matched(subscriptions, event, [installation(OTHER_ORG)]) == set()
    assert matched(subscriptions, event, []) == set()
    # An event that names a path of ORG but happened in OTHER_ORG reaches nobody installed in OTHER_ORG.
    assert (
        matched(
            subscriptions,
            EventView(OTHER_ORG, f"/api/v5/orgs/{ORG}/chats", "added"),
            [installation(OTHER_ORG)],
        )
        == set()
    )


def test_action_flags_and_scopes() -> None:
    w_add, w_change, w_remove = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pattern = "/api/v5/orgs/{organization_id}/chats"
    subscriptions = [
        sub(w_add, pattern, True, False, False),
        sub(w_change, pattern, False, True, False),
        sub(w_remove, pattern, False, False, True),
    ]
    channel = f"/api/v5/orgs/{ORG}/chats"
    inst = installation(scopes=frozenset({"reports"}))
    assert matched(subscriptions, EventView(ORG, channel, "added"), [inst]) == {w_add}
    assert matched(subscriptions, EventView(ORG, channel, "changed"), [inst]) == {w_change}
    assert matched(subscriptions, EventView(ORG, channel, "removed"), [inst]) == {w_remove}
    assert matched(subscriptions, EventView(ORG, channel, "added", "reports"), [inst]) == {w_add}
    assert matched(subscriptions, EventView(ORG, channel, "added", "users"), [inst]) == set()


def test_installations_channel_reaches_the_owner() -> None:
    webhook, org_wide = uuid.uuid4(), uuid.uuid4()
    subscriptions = [
        sub(webhook, INSTALLATIONS_PATTERN, True, False, False),
        sub(org_wide, "/api/v5/orgs/{organization_id}/owned_apps/*/installations"),
    ]
    channel = f"/api/v5/orgs/{OWNER}/owned_apps/{APP}/installations"
    assert installations_channel_app(channel) == (OWNER, APP)
    event = EventView(OWNER, channel, "added")
    # The owner has not installed its app: the exact pattern still matches, the org-wide one does not.
    assert matched(subscriptions, event, [], owned_app=(OWNER, APP)) == {webhook}
    assert matched(subscriptions, EventView(OWNER, channel, "removed"), [], owned_app=(OWNER, APP)) == set()
    # Only for the owner.
    assert matched(subscriptions, EventView(ORG, channel, "added"), [], owned_app=(OWNER, APP)) == set()
    # The owner also installed it: each webhook still gets the event once.
    own = InstallationView(uuid.uuid4(), APP, OWNER, None, frozenset(), OWNER)
    result = match_event(
        event, installations=[own], matchers={APP: AppMatcher(subscriptions)}, owned_app=(OWNER, APP)
    )
    assert sorted(m.webhook_id for m in result) == sorted([webhook, org_wide])


def test_pattern_validation() -> None:
    assert pattern_error(INSTALLATIONS_PATTERN) is None
    assert pattern_error("/api/v5/orgs/{organization_id}/chats/*/messages") is None
    assert pattern_error("/api/v5/users/{user_id}/{organization_id}") is None
    assert pattern_error("/api/v5/orgs/{organization_id}/") is not None
    assert pattern_error("/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations/x") is not None
    assert pattern_error("/api/v5/orgs/{organization_id}/ch*ts") is not None
    assert pattern_error("/api/v5/orgs/{organization_id}/a" + "b" * 500) is not None
