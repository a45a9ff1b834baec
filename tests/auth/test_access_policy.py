"""One access policy for REST reads and events (auth/policy.py), checked against itself end to end.

The differential test builds apps in every relation to one organization E (installed there by a
third party with each scope set, E's own apps, an app E owns but has not installed, a partner's
app, a stranger's app), each with a webhook subscribed to everything, then makes every channel
family the service emits happen in E (installations, installed apps, users, an owned app's
installations and webhooks) and publishes ingested events with each `required_scope`.

For every (app, event) it compares what the worker delivered with what the app's reader gets on
a REST read of the event's collection in E: the installation's app principal for E's data, the
app's provider (a user of its owner with `settings`) for E's `owned_apps/...` data. Every app
principal kind (app-user token, identity token, trigger token, `app_user_auth` bearer) and users
with each permission set read the same collections, so the printed table shows the policy whole.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.access_tokens import encode_access_token
from apps_api.auth.policy import (
    SETTINGS,
    Collection,
    Family,
    ProviderReader,
    collection_of,
    family_of,
    may_read,
    missing_grants,
    reader_for_event,
    refusal,
)
from apps_api.auth.service import authenticate_token
from apps_api.delivery.channels import FAMILIES
from apps_api.delivery.matching import INSTALLATIONS_PATTERN, AppMatcher, Subscription, split_path
from apps_api.identity.service import issue_app_user_code
from apps_api.models import App, AppInstallation
from apps_api.platform import service as platform
from apps_api.settings import Settings
from tests.fixtures.delivery import World, sub, verified
from tests.fixtures.factories import Tenant, make_user
from tests.fixtures.webhooks import Receiver, receivers, worker

SCOPE_SETS: list[tuple[str, ...]] = [
    (),
    ("settings",),
    ("users",),
    ("reports",),
    ("reports", "settings", "users"),
]
# Ingested channels, one per scope an event may require.
INGESTED = {"chats": "reports", "visitors": "users", "notes": "settings"}
EVERYTHING = [
    sub("/api/v5/orgs/{organization_id}/*"),
    sub("/api/v5/orgs/{organization_id}/owned_apps/*/installations"),
    sub("/api/v5/orgs/{organization_id}/owned_apps/*/webhooks"),
    sub(INSTALLATIONS_PATTERN),
]
APP_KINDS = ("app_user_token", "identity_token", "trigger_token", "app_user_bearer")


@dataclass
class Listener:
    """An app in some relation to E, with its receiver and the principals it can call with."""

    relation: str
    app: App
    provider: Tenant
    receiver: Receiver
    # principal kind -> Authorization header, for its installation in E if any, else elsewhere.
    headers: dict[str, str] = field(default_factory=dict)
    installed_in_e: bool = False


@dataclass(frozen=True)
class Probe:
    """One event the test caused in E: its channel, the resource's id, and the REST collection."""

    channel: str
    resource_id: str
    scope: str
    collection_path: str | None  # None: ingested, served by the publishing service, not here


async def _principals(
    in_world: World, client: httpx.AsyncClient, settings: Settings, app: App, installation: AppInstallation
) -> dict[str, str]:
    """Every app principal kind of one installation, as Authorization headers."""
    assert installation.app_user_id is not None

    async def mint(session: AsyncSession) -> tuple[str, str]:
        _, key = await platform.create_token(
            session=session, user_id=installation.app_user_id, app_installation_id=installation.id
        )
        current = await session.get(AppInstallation, installation.id)
        assert current is not None
        return key, await issue_app_user_code(session=session, installation=current)

    key, code = await in_world.run(mint)
    exchanged = await client.post(
        "/identity/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": str(app.id),
            "client_secret": app.secret,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    access = {
        "secret_key": settings.secret_key,
        "organization_id": installation.organization_id,
        "app_id": app.id,
        "installation_id": installation.id,
    }
    trigger = encode_access_token(
        **access, user_id=installation.created_by_user_id or installation.app_user_id
    )
    bearer = encode_access_token(**access, user_id=installation.app_user_id, as_app_user=True)
    return {
        "app_user_token": f"Token {key}",
        "identity_token": f"Token {exchanged.json()['access_token']}",
        "trigger_token": f"GIOSGAPP {trigger} {app.secret}",
        "app_user_bearer": f"Bearer {bearer}",
    }


async def _status(client: httpx.AsyncClient, path: str, authorization: str) -> int:
    return (await client.get(path, headers={"Authorization": authorization})).status_code


def _row(*cells: object) -> str:
    widths = (34, 44, 10, 10, 40)
    return " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False))


@pytest.mark.subprocess
@pytest.mark.slow
async def test_an_app_hears_an_event_exactly_when_its_reader_may_read_the_collection(
    world: World,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
) -> None:
    e = await world.tenant("E")
    third_party = await world.tenant("Third party")
    partner, stranger = await world.tenant("Partner"), await world.tenant("Stranger")
    await world.run(lambda s: platform.add_partnership(session=s, a=e.org_id, b=partner.org_id))
    bot = {
        "is_app_user_required": True,
        "app_user_default_first_name": "Bot",
        "app_user_default_last_name": "B",
    }
    private = {**bot, "is_available_to_anyone": False, "is_approved": False}

    # (relation, provider, where it is installed with which scopes)
    plan: list[tuple[str, Tenant, dict[str, Any], Tenant, tuple[str, ...]]] = [
        *((f"installer {list(s)}", third_party, bot, e, s) for s in SCOPE_SETS),
        ("own organization []", e, private, e, ()),
        ("own organization [settings]", e, private, e, ("settings",)),
        ("owner (not installed in E)", e, bot, third_party, ("settings",)),
        (
            "partner (not installed in E)",
            partner,
            {**private, "is_available_to_partners": True},
            partner,
            ("settings",),
        ),
        ("stranger", stranger, private, stranger, ("reports", "settings", "users")),
    ]
    with receivers(*([None] * len(plan))) as sinks:
        listeners: list[Listener] = []
        for (relation, provider, attributes, home, scopes), receiver in zip(plan, sinks, strict=True):
            app = await world.app(provider, name=relation[:40], **attributes)
            await world.webhook(provider, app, receiver.url, *EVERYTHING)
            installation = await world.install(home, app, scopes=list(scopes))
            listener = Listener(relation, app, provider, receiver, installed_in_e=home is e)
            listener.headers = await _principals(world, client, settings, app, installation)
            listeners.append(listener)

        # The probes: every channel family the service emits, caused in E.
        owner_app = next(item.app for item in listeners if item.relation.startswith("owner"))
        probed = await world.app(e, name="Probed", **bot)
        installed = await world.install(e, probed, scopes=["settings"])
        installed_elsewhere = await world.install(partner, owner_app, scopes=["settings"])
        probe_webhook = await world.webhook(
            e, probed, sinks[0].url, sub("/api/v5/orgs/{organization_id}/nothing")
        )
        await world.publish(
            *(
                {
                    "organization_id": str(e.org_id),
                    "channel": f"/api/v5/orgs/{e.org_id}/{name}",
                    "action": "added",
                    "resource_id": f"{name}-1",
                    "resource": {"id": f"{name}-1"},
                    "required_scope": scope,
                }
                for name, scope in INGESTED.items()
            )
        )
        orgs = f"/api/v5/orgs/{e.org_id}"
        assert installed.app_user_id is not None
        probes = [
            Probe(f"{orgs}/app_installations", str(installed.id), SETTINGS, f"{orgs}/app_installations"),
            Probe(f"{orgs}/installed_apps", str(probed.id), SETTINGS, f"{orgs}/installed_apps"),
            Probe(f"{orgs}/users", str(installed.app_user_id), "users", f"{orgs}/users"),
            Probe(
                f"{orgs}/owned_apps/{probed.id}/installations",
                str(installed.id),
                SETTINGS,
                f"{orgs}/owned_apps/{probed.id}/installations",
            ),
            Probe(
                f"{orgs}/owned_apps/{owner_app.id}/installations",
                str(installed_elsewhere.id),
                SETTINGS,
                f"{orgs}/owned_apps/{owner_app.id}/installations",
            ),
            Probe(
                f"{orgs}/owned_apps/{probed.id}/webhooks",
                str(probe_webhook),
                SETTINGS,
                f"{orgs}/owned_apps/{probed.id}/webhooks",
            ),
            *(Probe(f"{orgs}/{name}", f"{name}-1", scope, None) for name, scope in INGESTED.items()),
        ]
        # Every subscribable family of the catalogue (delivery/channels.py) is probed here.
        for family in FAMILIES:
            matcher = AppMatcher([Subscription(uuid.uuid4(), family.pattern, True, True, True)])
            bindings = {
                "{organization_id}": str(e.org_id),
                "{app_organization_id}": str(e.org_id),
                "{app_id}": str(probed.id),
            }
            probed_channels = [p.channel for p in probes]
            found = any(list(matcher.match(split_path(c), bindings)) for c in probed_channels)
            assert found or not family.subscribable, f"no probe of the family {family.name}"
        with worker():
            await world.settle()

    # Users of E with each permission set: the REST side of each grant.
    users: dict[tuple[str, ...], str] = {}
    for scopes in SCOPE_SETS:
        _, key = await make_user(session, e.organization, permissions=list(scopes))
        users[scopes] = f"Token {key}"
    await session.commit()

    def shown(path: str) -> str:
        names = {str(e.org_id): "E", str(probed.id): "{probed}", str(owner_app.id): "{own app}"}
        for value, name in names.items():
            path = path.replace(value, name)
        return path

    table = [
        _row("app (relation to E)", "channel in E", "reader", "delivered", "REST reads of the collection")
    ]
    wrong: list[str] = []
    for listener in listeners:
        heard = {
            (body["channel"], body["resource_id"])
            for body in verified(listener.receiver, listener.app.secret)
        }
        for probe in probes:
            family = family_of(probe.channel)
            delivered = (probe.channel, probe.resource_id) in heard
            provider_header = f"Token {listener.provider.token}"
            if probe.collection_path is None:
                # Served by the publishing service: the policy on the principal our authentication builds.
                principal = await authenticate_token(
                    session=session, key=listener.headers["app_user_token"][6:]
                )
                assert principal is not None
                readable = may_read(principal, Collection(family, e.org_id, probe.scope))
                reads = {"policy": 200 if readable else 403}
            else:
                reads = {
                    kind: await _status(client, probe.collection_path, listener.headers[kind])
                    for kind in APP_KINDS
                }
                reads["provider"] = await _status(client, probe.collection_path, provider_header)
                readable = reads["provider" if family is Family.PROVIDER else "app_user_token"] == 200
                # Every app principal kind of one installation is the same reader.
                if family is not Family.PROVIDER and len({reads[kind] for kind in APP_KINDS}) != 1:
                    wrong.append(f"{listener.relation} {probe.channel}: app principals disagree {reads}")
                if family is Family.PROVIDER and any(reads[kind] != 403 for kind in APP_KINDS):
                    wrong.append(f"{listener.relation} {probe.channel}: an app principal reads provider data")
            reader = "provider" if family is Family.PROVIDER else "app"
            table.append(_row(listener.relation, shown(probe.channel), reader, delivered, reads))
            # Only if: nothing reaches an app whose reader is refused. And if: an app installed in E,
            # subscribed to everything, hears everything its reader may read.
            if (delivered and not readable) or (listener.installed_in_e and readable and not delivered):
                wrong.append(f"{listener.relation} {probe.channel}: delivered={delivered}, reads {reads}")

    # A grant of scopes S reads E's data as a user holding exactly S does, never provider data.
    table.append("")
    table.append(_row("user of E with permissions", "collection", "", "", "status"))
    for probe in probes:
        if probe.collection_path is None:
            continue
        for scopes, header in users.items():
            status = await _status(client, probe.collection_path, header)
            table.append(_row(f"user {list(scopes)}", shown(probe.collection_path), "", "", status))
            if family_of(probe.channel) is Family.ORGANIZATION:
                installer = next(item for item in listeners if item.relation == f"installer {list(scopes)}")
                app_status = await _status(client, probe.collection_path, installer.headers["app_user_token"])
                if app_status != status:
                    wrong.append(f"user {scopes} gets {status}, the app granted {scopes} gets {app_status}")
    print("\n" + "\n".join(table))
    assert not wrong, "\n".join(wrong)
    # The table is not vacuous: some reach, some are refused, in each family.
    delivered_rows = [line for line in table if "| True " in line]
    assert any("/users" in line for line in delivered_rows)
    assert any("owned_apps" in line for line in delivered_rows)
    assert any("/chats" in line for line in delivered_rows)


@pytest.mark.parametrize(
    ("channel", "family"),
    [
        ("/api/v5/users/{user_id}/chats", Family.USER),
        ("/api/v5/users/1f0c/routed_chats/", Family.USER),
        ("/api/v5/orgs/{organization_id}/owned_apps/{app_id}/webhooks", Family.PROVIDER),
        ("/api/v5/orgs/{organization_id}/chats", Family.ORGANIZATION),
        ("/api/v5/orgs/{organization_id}/users", Family.ORGANIZATION),
        # Only the exact prefixes count, whichever way another path sorts against them.
        ("/api/v5/users/{user_id}/owned_apps", Family.USER),
        ("/api/v4/orgs/{organization_id}/owned_apps/{app_id}/webhooks", Family.ORGANIZATION),
        ("/api/v5/visitors/{visitor_id}", Family.ORGANIZATION),
    ],
)
def test_the_family_of_a_channel(channel: str, family: Family) -> None:
    assert family_of(channel) is family


def test_a_granter_lacks_exactly_the_scopes_it_does_not_hold() -> None:
    provider = ProviderReader(uuid.uuid4())  # holds `settings` only
    assert missing_grants(granter=provider, scopes=frozenset({"settings", "users", "reports"})) == [
        "reports",
        "users",
    ]
    assert missing_grants(granter=provider, scopes=frozenset({"settings"})) == []
    assert missing_grants(granter=None, scopes=frozenset({"users"})) == []  # the operator


# The rule itself, on plain values: the differential test above reaches it only through the
# principals and channels the service has, with random organization ids (whose order decides
# whether an organization check's `!=` made `<` or `>` is caught).
LOW, HIGH = uuid.UUID(int=1), uuid.UUID(int=2)


@dataclass(frozen=True)
class Caller:
    """A reader as the policy sees it, of either kind: the differential test's are real principals."""

    organization_id: uuid.UUID
    is_app: bool = False
    permissions: frozenset[str] = frozenset()

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions


ORGANIZATION_REFUSED = "You do not have access to this organization."
PROVIDER_REFUSED = "Apps cannot access app provider resources."
USER_LACKS_USERS = "You do not have the `users` permission; your administrator can grant it."
APP_LACKS_USERS = (
    "The app's installation was not granted the `users` scope; a user of the organization who"
    " has it can install the app again with that scope."
)


@pytest.mark.parametrize(("reader_org", "collection_org"), [(LOW, HIGH), (HIGH, LOW)])
@pytest.mark.parametrize("family", list(Family))
def test_another_organization_is_refused_whichever_way_the_ids_sort(
    reader_org: uuid.UUID, collection_org: uuid.UUID, family: Family
) -> None:
    everything = frozenset({SETTINGS, "users", "reports"})
    for reader in (Caller(reader_org, permissions=everything), Caller(reader_org, is_app=True)):
        collection = Collection(family, collection_org, None)
        assert refusal(reader, collection) == ORGANIZATION_REFUSED
        assert not may_read(reader, collection)
        assert refusal(reader, Collection(family, reader_org, None)) != ORGANIZATION_REFUSED


@pytest.mark.parametrize("family", [Family.ORGANIZATION, Family.USER])
def test_a_scope_is_needed_only_when_the_collection_names_one(family: Family) -> None:
    for is_app in (False, True):
        bare, granted = (
            Caller(LOW, is_app=is_app),
            Caller(LOW, is_app=is_app, permissions=frozenset({"users"})),
        )
        assert refusal(bare, Collection(family, LOW, None)) is None
        assert may_read(bare, Collection(family, LOW, None))
        assert refusal(granted, Collection(family, LOW, "users")) is None
        assert may_read(granted, Collection(family, LOW, "users"))
        assert refusal(granted, Collection(family, LOW, "reports")) is not None
    # Who can grant what is missing depends on the kind of caller.
    assert refusal(Caller(LOW), Collection(family, LOW, "users")) == USER_LACKS_USERS
    assert refusal(Caller(LOW, is_app=True), Collection(family, LOW, "users")) == APP_LACKS_USERS


def test_provider_data_is_read_by_its_organization_s_users_with_settings_and_never_by_an_app() -> None:
    owned = Collection(Family.PROVIDER, LOW, SETTINGS)
    assert refusal(Caller(LOW, permissions=frozenset({SETTINGS})), owned) is None
    assert refusal(ProviderReader(LOW), owned) is None
    assert refusal(Caller(LOW, is_app=True, permissions=frozenset({SETTINGS})), owned) == PROVIDER_REFUSED
    # The permission is checked before the kind of caller (docs/design.md section 4).
    assert refusal(Caller(LOW, is_app=True), owned) == (
        "The app's installation was not granted the `settings` scope; a user of the organization"
        " who has it can install the app again with that scope."
    )
    assert refusal(ProviderReader(HIGH), owned) == ORGANIZATION_REFUSED


def test_an_event_s_collection_needs_settings_in_the_provider_family_and_its_own_scope_elsewhere() -> None:
    provider = collection_of(
        channel=f"/api/v5/orgs/{LOW}/owned_apps/{HIGH}/webhooks", organization_id=LOW, scope="users"
    )
    assert provider == Collection(Family.PROVIDER, LOW, SETTINGS)
    for channel, family in (
        (f"/api/v5/orgs/{LOW}/chats", Family.ORGANIZATION),
        (f"/api/v5/users/{HIGH}/chats", Family.USER),
    ):
        assert collection_of(channel=channel, organization_id=LOW, scope="reports") == Collection(
            family, LOW, "reports"
        )
        assert collection_of(channel=channel, organization_id=LOW, scope=None) == Collection(
            family, LOW, None
        )


def test_an_app_reads_provider_data_as_its_provider_and_other_data_as_its_installation() -> None:
    installation = Caller(HIGH, is_app=True, permissions=frozenset({SETTINGS}))
    for installed in (installation, None):
        reader = reader_for_event(
            collection=Collection(Family.PROVIDER, LOW, SETTINGS), app_owner_id=LOW, installation=installed
        )
        assert reader == ProviderReader(LOW)
    for family in (Family.ORGANIZATION, Family.USER):
        collection = Collection(family, HIGH, "users")
        assert (
            reader_for_event(collection=collection, app_owner_id=LOW, installation=installation)
            is installation
        )
        assert reader_for_event(collection=collection, app_owner_id=LOW, installation=None) is None
