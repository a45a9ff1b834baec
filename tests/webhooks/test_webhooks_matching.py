"""Matching rules of docs/design.md section 8, on the compiled per-app tries (no database)."""

from __future__ import annotations

import uuid

from apps_api.delivery.matching import (
    INSTALLATIONS_PATTERN,
    AppMatcher,
    EventView,
    InstallationView,
    Snapshot,
    Subscription,
    installations_channel_app,
    match_event,
    pattern_error,
    was_installed,
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
    # An organization's provider channels reach its own apps only, never a third-party app
    # installed there (auth.policy: an app principal never reads `owned_apps/...`).
    own_webhooks = EventView(ORG, f"/api/v5/orgs/{ORG}/owned_apps/{APP}/webhooks", "changed", "settings")
    assert matched(subscriptions, own_webhooks, [inst]) == set()
    own_inst = InstallationView(uuid.uuid4(), APP, ORG, APP_USER, frozenset({"reports"}), ORG)
    assert matched(subscriptions, own_webhooks, [own_inst]) == {w_app}
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
    # At most 500 characters, the length of the column that stores it.
    longest = "/api/v5/orgs/{organization_id}/" + "a" * 469
    assert len(longest) == 500 and pattern_error(longest) is None
    assert pattern_error(longest + "a") == "Must be at most 500 characters."


def test_the_owner_hears_its_installations_channel_without_an_installer_scope() -> None:
    webhook, org_wide = uuid.uuid4(), uuid.uuid4()
    subscriptions = [
        sub(webhook, INSTALLATIONS_PATTERN),
        sub(org_wide, "/api/v5/orgs/{organization_id}/owned_apps/*/installations"),
    ]
    channel = f"/api/v5/orgs/{OWNER}/owned_apps/{APP}/installations"
    event = EventView(OWNER, channel, "added", "settings")
    own = InstallationView(uuid.uuid4(), APP, OWNER, None, frozenset(), OWNER)
    # The provider's own data reaches its app without an installation, on the spec's pattern.
    assert matched(subscriptions, event, [], owned_app=(OWNER, APP)) == {webhook}
    # Installed in the owner's organization, the app reads the owner's `owned_apps/...` as its
    # provider (auth.policy), whatever scopes its installation was granted.
    assert matched(subscriptions, event, [own], owned_app=(OWNER, APP)) == {webhook, org_wide}
    # A third-party app installed there with every scope hears neither.
    third = InstallationView(uuid.uuid4(), APP, OWNER, None, frozenset({"settings", "users"}), OTHER_ORG)
    assert matched(subscriptions, event, [third]) == set()


def test_an_installation_elsewhere_never_hears_the_owners_installations_channel() -> None:
    """Through its installation in another organization the app hears nothing of the owner's
    channels, whichever way that organization's id compares with the owner's."""
    owner = uuid.UUID(int=2**127)
    webhook = uuid.uuid4()
    channel = f"/api/v5/orgs/{owner}/owned_apps/{APP}/installations"
    event = EventView(owner, channel, "added")
    # The provider may read its own channel: only the organization check keeps these out.
    for organization in (uuid.UUID(int=1), uuid.UUID(int=2**128 - 1)):
        scopes = frozenset({"settings"})
        elsewhere = InstallationView(uuid.uuid4(), APP, organization, APP_USER, scopes, owner)
        assert matched([sub(webhook, INSTALLATIONS_PATTERN)], event, [elsewhere]) == set(), organization


def test_an_installations_channel_of_a_malformed_id_names_no_app() -> None:
    # 36 hexadecimal digits pass the channel's shape but are no UUID.
    assert installations_channel_app(f"/api/v5/orgs/{'a' * 36}/owned_apps/{APP}/installations") is None
    assert installations_channel_app(f"/api/v5/orgs/{OWNER}/owned_apps/{'0' * 36}/installations") is None


def test_snapshots_follow_postgresql_visibility() -> None:
    snapshot = Snapshot.parse(105, "100:110:103,105")
    assert (snapshot.xmin, snapshot.xmax, snapshot.in_progress) == (100, 110, frozenset({103, 105}))
    assert snapshot.sees(99) and snapshot.sees(104) and snapshot.sees(105)  # 105: its own transaction
    assert not snapshot.sees(103) and not snapshot.sees(110) and not snapshot.sees(200)
    assert Snapshot.parse(7, "7:7:").in_progress == frozenset()
    # xmin is the oldest transaction still running: it is not visible, every one below it is.
    oldest_running = Snapshot.parse(105, "100:110:100,105")
    assert oldest_running.sees(99) and not oldest_running.sees(100) and oldest_running.sees(101)
    # Nothing else running: xmin is xmax, the next transaction to start.
    assert not Snapshot.parse(6, "7:7:").sees(7)


def test_installations_as_the_event_writer_saw_them() -> None:
    def event(xact_id: int, snapshot: str) -> EventView:
        return EventView(
            ORG, f"/api/v5/orgs/{ORG}/chats", "added", "reports", Snapshot.parse(xact_id, snapshot)
        )

    def inst(installed: int | None, removed: int | None = None) -> InstallationView:
        return InstallationView(
            uuid.uuid4(), APP, ORG, None, frozenset({"reports"}), OWNER, installed, removed
        )

    writer = event(105, "100:110:103,105")
    assert was_installed(writer, inst(99))
    assert was_installed(writer, inst(None))  # created before installations recorded their transaction
    assert was_installed(writer, inst(105))  # installed by the event's own transaction
    assert not was_installed(writer, inst(103))  # still in progress when the event was written
    assert not was_installed(writer, inst(111))  # began after the event's statement
    # Removals: an uninstall's own `removed` events reach the installation they remove.
    assert was_installed(writer, inst(99, removed=105))
    assert was_installed(writer, inst(99, removed=103))  # removed by a transaction not committed yet
    assert was_installed(writer, inst(99, removed=120))
    assert not was_installed(writer, inst(99, removed=101))  # removed before the event was written
    # Removed by a transaction that began after the writer's but committed before its statement.
    assert not was_installed(writer, inst(99, removed=107))
    # Events without a snapshot (written before snapshots were recorded): what is installed now.
    legacy = EventView(ORG, f"/api/v5/orgs/{ORG}/chats", "added", "reports")
    assert was_installed(legacy, inst(111)) and not was_installed(legacy, inst(99, removed=101))
    subscriptions = [sub(uuid.uuid4(), "/api/v5/orgs/{organization_id}/chats")]
    assert matched(subscriptions, writer, [inst(103), inst(99, removed=101)]) == set()
    assert len(matched(subscriptions, writer, [inst(99, removed=105)])) == 1


def test_one_match_per_app_and_endpoint_url_the_smallest_webhook_id() -> None:
    """Issue 24: an app's webhooks naming one URL get the event once, through the first webhook."""
    same = sorted(uuid.uuid4() for _ in range(20))
    elsewhere, other_app_webhook, other_app = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pattern = "/api/v5/orgs/{organization_id}/chats"
    urls = {webhook: "https://hooks.example.com/x" for webhook in same}
    matchers = {
        APP: AppMatcher(
            [sub(webhook, pattern) for webhook in [*reversed(same), elsewhere]],
            {**urls, elsewhere: "https://hooks.example.com/y"},
        ),
        other_app: AppMatcher(
            [sub(other_app_webhook, pattern)], {other_app_webhook: "https://hooks.example.com/x"}
        ),
    }
    other_installation = InstallationView(uuid.uuid4(), other_app, ORG, None, frozenset({"reports"}), OWNER)
    event = EventView(ORG, f"/api/v5/orgs/{ORG}/chats", "added", "reports")

    found = match_event(event, installations=[installation(), other_installation], matchers=matchers)

    assert sorted((m.app_id, m.webhook_id) for m in found) == sorted(
        [(APP, same[0]), (APP, elsewhere), (other_app, other_app_webhook)]
    )


def test_two_webhooks_of_one_app_on_one_url_get_the_event_once() -> None:
    first, second = sorted(uuid.uuid4() for _ in range(2))
    pattern = "/api/v5/orgs/{organization_id}/chats"
    url = "https://hooks.example.com/x"
    matchers = {APP: AppMatcher([sub(second, pattern), sub(first, pattern)], {first: url, second: url})}
    event = EventView(ORG, f"/api/v5/orgs/{ORG}/chats", "added", "reports")

    found = match_event(event, installations=[installation()], matchers=matchers)

    assert [(m.app_id, m.webhook_id) for m in found] == [(APP, first)]
