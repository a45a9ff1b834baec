"""The channel families the service itself emits: pattern, actions and scope, defined once.

Every emitter builds its concrete channel and takes its scope from here, and the channel
catalogue (`webhooks/catalogue.py`: schemas, examples, `GET /api/v5/webhook_channels`, the
OpenAPI `webhooks`, the console's picker) is built on the same objects, so what the service
sends and what it documents cannot drift apart (tests/webhooks/test_channel_catalogue.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from apps_api.delivery.events import SETTINGS_SCOPE, USERS_SCOPE
from apps_api.delivery.matching import INSTALLATIONS_PATTERN, ORG_PREFIX


@dataclass(frozen=True)
class ChannelFamily:
    """A kind of channel: its pattern (placeholders in braces), the actions sent on it, the scope."""

    name: str
    pattern: str
    actions: tuple[str, ...]
    description: str
    # The scope an installation needs to hear it: the organization's settings unless said.
    scope: str = SETTINGS_SCOPE
    # False for the test event: it goes to one webhook, whatever its subscriptions.
    subscribable: bool = True

    def channel(self, **values: uuid.UUID | str) -> str:
        """The concrete channel: every placeholder of the pattern filled from `values`."""
        channel = self.pattern
        for name, value in values.items():
            channel = channel.replace("{" + name + "}", str(value))
        if "{" in channel:
            raise ValueError(f"Unfilled placeholder in {channel}")
        return channel


APP_INSTALLATIONS = ChannelFamily(
    name="app_installations",
    pattern=ORG_PREFIX + "app_installations",
    actions=("added", "removed"),
    description="Apps installed in (added) or uninstalled from (removed) the organization.",
)
INSTALLED_APPS = ChannelFamily(
    name="installed_apps",
    pattern=ORG_PREFIX + "installed_apps",
    actions=("added", "changed", "removed"),
    description=(
        "The organization's installed apps: installed, edited by their owner (`changed`: the changed "
        "attributes), uninstalled."
    ),
)
USERS = ChannelFamily(
    name="users",
    pattern=ORG_PREFIX + "users",
    actions=("added", "removed"),
    description="App users (bots) created when an app is installed, removed when it is uninstalled.",
    scope=USERS_SCOPE,
)
OWNED_APP_INSTALLATIONS = ChannelFamily(
    name="owned_app_installations",
    pattern=INSTALLATIONS_PATTERN,
    actions=("added", "removed"),
    description=(
        "Installations of the provider's own app in any organization; the app itself hears it "
        "without any installer scope."
    ),
)
WEBHOOKS = ChannelFamily(
    name="webhooks",
    pattern=ORG_PREFIX + "owned_apps/{app_id}/webhooks",
    actions=("added", "changed", "removed"),
    description=(
        "The provider's webhooks of its own app: created, changed (the changed attributes: an edit, "
        "an automatic disabling, or a secret rotation), deleted. Reaches only the owner's own apps."
    ),
)
WEBHOOK_TEST = ChannelFamily(
    name="webhook_test",
    pattern=ORG_PREFIX + "owned_apps/{app_id}/webhooks/{webhook_id}",
    actions=("test",),
    description="The test notification of `POST .../webhooks/{webhook_id}/test`, sent to that webhook only.",
    subscribable=False,
)
FAMILIES = (APP_INSTALLATIONS, INSTALLED_APPS, USERS, OWNED_APP_INSTALLATIONS, WEBHOOKS, WEBHOOK_TEST)
