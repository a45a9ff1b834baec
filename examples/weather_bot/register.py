"""Register Weather Bot as an app of your organization, with its triggers and webhook.

    export WEATHER_BOT_API_URL=http://127.0.0.1:8000
    export WEATHER_BOT_ORG_ID=<organization id> WEATHER_BOT_PROVIDER_TOKEN=<API token>
    eval "$(python register.py --public-url http://127.0.0.1:8080)"

Prints `export WEATHER_BOT_APP_ID=... WEATHER_BOT_APP_SECRET=...` for bot.py (keep the secret
secret: it verifies everything the API sends to the bot).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

import httpx

# giosg's placeholders: the owner's installations of this app (added = installed, removed = uninstalled).
INSTALLATIONS = "/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations"


def register(
    *, api_url: str, organization_id: str, token: str, public_url: str, partners: bool
) -> dict[str, Any]:
    """Create the app and its webhook; returns the app (with its secret)."""
    public_url = public_url.rstrip("/")
    with httpx.Client(
        base_url=api_url.rstrip("/"), headers={"Authorization": f"Token {token}"}, timeout=10
    ) as api:
        created = api.post(
            f"/api/v5/orgs/{organization_id}/owned_apps",
            json={
                "name": "Weather Bot",
                "description": "Tells your visitors the weather.",
                "is_app_user_required": True,
                "app_user_default_first_name": "Weather",
                "app_user_default_last_name": "Bot",
                "app_user_default_alias": "weatherbot",
                "terms_of_service_url": f"{public_url}/terms",
                "privacy_policy_url": f"{public_url}/privacy",
                "trigger_url": f"{public_url}/giosg/trigger",
                "trigger_conditions": ["install", "uninstall"],
                # Reading its installation needs `settings` (README: the permission model).
                "required_scopes": ["settings"],
                "is_available_to_partners": partners,
            },
        )
        _check(created, 201)
        app: dict[str, Any] = created.json()
        hook = api.post(
            f"/api/v5/orgs/{organization_id}/owned_apps/{app['id']}/webhooks",
            json={
                "endpoint_url": f"{public_url}/giosg/webhook",
                "channel_subscriptions": [
                    {
                        "channel_pattern": INSTALLATIONS,
                        "is_additions_subscribed": True,
                        "is_changes_subscribed": False,
                        "is_removals_subscribed": True,
                    }
                ],
            },
        )
        _check(hook, 201)
    return app


def _check(answer: httpx.Response, expected: int) -> None:
    if answer.status_code != expected:
        sys.exit(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--public-url", required=True, help="where the API's worker and browsers reach bot.py"
    )
    parser.add_argument("--partners", action="store_true", help="make the app installable by partners")
    args = parser.parse_args()
    api_url = os.environ.get("WEATHER_BOT_API_URL", "http://127.0.0.1:8000")
    app = register(
        api_url=api_url,
        organization_id=os.environ["WEATHER_BOT_ORG_ID"],
        token=os.environ["WEATHER_BOT_PROVIDER_TOKEN"],
        public_url=args.public_url,
        partners=args.partners,
    )
    app_id, secret = shlex.quote(app["id"]), shlex.quote(app["secret"])
    print(f"export WEATHER_BOT_APP_ID={app_id} WEATHER_BOT_APP_SECRET={secret}")
    print(f"# install it: {api_url.rstrip('/')}/apps/{app['id']}/install?next=/healthz", file=sys.stderr)


if __name__ == "__main__":
    main()
