"""Weather Bot: a small giosg app provider service (Starlette), written to be copied.

It receives the app's `install` and `uninstall` triggers and its webhooks, keeps one API
token of its app user per installing organization, and calls the Apps API as that app user.
Run it with `uvicorn --factory bot:create_app --port 8080` after `register.py` (see README.md).

State is kept in memory to stay short: a real service keeps the tokens (encrypted) and the
seen `webhook-id`s in a database, for longer than the API's retry schedule (about 35 hours).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

log = logging.getLogger("weather_bot")

SEEN_LIMIT = 10_000  # remembered webhook-ids (oldest forgotten first)


@dataclass(frozen=True)
class Config:
    api_url: str  # the Apps API, e.g. http://127.0.0.1:8000
    organization_id: str  # the provider: the organization that owns the app
    provider_token: str  # an API token of a provider user with the `settings` permission
    app_id: str
    app_secret: str  # verifies trigger JWTs and webhook signatures; never logged

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        return cls(
            api_url=env.get("WEATHER_BOT_API_URL", "http://127.0.0.1:8000").rstrip("/"),
            organization_id=env["WEATHER_BOT_ORG_ID"],
            provider_token=env["WEATHER_BOT_PROVIDER_TOKEN"],
            app_id=env["WEATHER_BOT_APP_ID"],
            app_secret=env["WEATHER_BOT_APP_SECRET"],
        )


@dataclass
class Installation:
    organization_id: str
    installation_id: str
    app_user_id: str | None
    source: str  # where the token came from: "identity/token" or "app_user_tokens"
    authorization: str  # `<token_type> <token>`, the Authorization header of the app user

    def public(self) -> dict[str, Any]:
        """What /status shows: everything but the token."""
        shown = asdict(self)
        del shown["authorization"]
        return shown


class Bot:
    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http
        # The Standard Webhooks verifier keys the HMAC with the secret as the API does.
        self.webhook = Webhook(config.app_secret)
        self.installations: dict[str, Installation] = {}  # by installing organization id
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0
        self.activity: list[dict[str, Any]] = []  # what the bot did, shown on /status

    # --- verification ---------------------------------------------------------------

    def trigger_claims(self, data: str) -> dict[str, Any]:
        """The `data` JWT's claims, if it is signed with our secret, unexpired and for our app."""
        claims: dict[str, Any] = jwt.decode(
            data, self.config.app_secret, algorithms=["HS256"], options={"require": ["exp"]}
        )
        if claims.get("app_id") != self.config.app_id:
            raise jwt.InvalidTokenError("the trigger is for another app")
        return claims

    def first_time(self, webhook_id: str) -> bool:
        """False for a webhook-id already handled (a retry or a redelivery of the same message)."""
        if webhook_id in self.seen:
            self.duplicates += 1
            return False
        self.seen[webhook_id] = None
        if len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)
        return True

    def safe_redirect(self, redirect_uri: str | None) -> str:
        """Send the browser back only to the Apps API's own origin: redirect_uri is not signed."""
        api = urlsplit(self.config.api_url)
        target = urlsplit(redirect_uri or "")
        if (target.scheme, target.netloc) == (api.scheme, api.netloc):
            return redirect_uri or "/"
        return "/installed"

    # --- the app user's token ---------------------------------------------------------

    def remember(self, claims: dict[str, Any], *, source: str, authorization: str) -> None:
        organization_id = claims["org_id"]
        self.installations[organization_id] = Installation(
            organization_id=organization_id,
            installation_id=claims["inst_id"],
            app_user_id=claims.get("app_user_id"),
            source=source,
            authorization=authorization,
        )
        self.record("token_stored", organization_id=organization_id, source=source)

    async def exchange_code(self, claims: dict[str, Any]) -> None:
        """Browser install: trade the single-use `app_user_code` for the app user's API token."""
        answer = await self.http.post(
            "/identity/token",
            data={
                "grant_type": "authorization_code",
                "code": claims["app_user_code"],
                "client_id": self.config.app_id,
                "client_secret": self.config.app_secret,
            },
        )
        answer.raise_for_status()
        token = answer.json()
        self.remember(
            claims, source="identity/token", authorization=f"{token['token_type']} {token['access_token']}"
        )

    async def mint_token(self, claims: dict[str, Any]) -> None:
        """API install (no browser, no code): the provider creates a token on its app user's behalf."""
        path = (
            f"/api/v5/orgs/{self.config.organization_id}/owned_apps/{self.config.app_id}"
            f"/installations/{claims['inst_id']}/app_user_tokens"
        )
        answer = await self.http.post(
            path, json={}, headers={"Authorization": f"Token {self.config.provider_token}"}
        )
        answer.raise_for_status()
        self.remember(claims, source="app_user_tokens", authorization=f"Token {answer.json()['token']}")

    async def check_token(self, organization_id: str) -> None:
        """Slow work after the answer: call the API as the app user with its stored token."""
        installation = self.installations.get(organization_id)
        if installation is None:
            return
        answer = await self.http.get(
            f"/api/v5/orgs/{organization_id}/installed_apps",
            headers={"Authorization": installation.authorization},
        )
        self.record("token_checked", organization_id=organization_id, status_code=answer.status_code)

    def forget(self, organization_id: str | None, installation_id: str | None, *, via: str) -> None:
        """Uninstalled: the API has revoked the app user's tokens; drop ours.

        By installation id: notifications may arrive out of order, and a late one about an old
        installation must not drop the token of the organization's newer one."""
        for key, installation in list(self.installations.items()):
            if installation.installation_id == installation_id or (
                installation_id is None and key == organization_id
            ):
                del self.installations[key]
        self.record("forgotten", organization_id=organization_id, installation_id=installation_id, via=via)

    # --- webhook events -----------------------------------------------------------------

    async def handle_event(self, event: dict[str, Any]) -> None:
        """React to a verified notification (runs after the 2xx answer)."""
        installations_channel = (
            f"/api/v5/orgs/{self.config.organization_id}/owned_apps/{self.config.app_id}/installations"
        )
        if event.get("channel") != installations_channel:
            return
        resource = event.get("resource") or {}
        if event.get("action") == "removed":
            self.forget(resource.get("organization_id"), event.get("resource_id"), via="webhook")
            return
        auth = event.get("app_user_auth")
        if event.get("action") != "added" or not auth:
            return
        # As the new installation's app user, with the short-lived token the webhook carries.
        answer = await self.http.get(
            f"/api/v5/orgs/{auth['organization_id']}/app_installations/{event['resource_id']}",
            headers={"Authorization": f"{auth['token_type']} {auth['access_token']}"},
        )
        read = answer.json() if answer.status_code == 200 else {}
        self.record(
            "greeted",
            organization_id=auth["organization_id"],
            installation_id=event["resource_id"],
            status_code=answer.status_code,
            app_user_id=read.get("app_user_id"),
            forecast="sunny, 21 °C",
        )

    async def mint_then_check(self, claims: dict[str, Any]) -> None:
        await self.mint_token(claims)
        await self.check_token(claims["org_id"])

    def later(self, work: Callable[..., Awaitable[None]], *args: Any) -> BackgroundTask:
        """Work to do after the answer is sent; a failure is recorded (the API has its 2xx already)."""

        async def run() -> None:
            try:
                await work(*args)
            except Exception as error:  # report and carry on: the API has its answer already
                self.record("error", work=work.__name__, error=type(error).__name__)

        return BackgroundTask(run)

    def record(self, kind: str, **details: Any) -> None:
        self.activity.append({"kind": kind, **details})
        log.info("%s %s", kind, details)


def _bot(request: Request) -> Bot:
    bot: Bot = request.app.state.bot
    return bot


# --- routes -----------------------------------------------------------------------------


async def trigger(request: Request) -> Response:
    """GET trigger_url?type=install|uninstall&data=<JWT>[&token=..&redirect_uri=..]"""
    bot = _bot(request)
    try:
        claims = bot.trigger_claims(request.query_params.get("data", ""))
    except jwt.PyJWTError:
        return PlainTextResponse("Invalid trigger.", status_code=400)
    if "webhook-id" in request.headers:
        # Sent by the API's worker (not a browser): also signed like a webhook, and retried.
        try:
            bot.webhook.verify(b"", dict(request.headers), json_parse=False)
        except (WebhookVerificationError, ValueError):
            return PlainTextResponse("Invalid signature.", status_code=400)
        if not bot.first_time(request.headers["webhook-id"]):
            return PlainTextResponse("Already handled.")
    kind = request.query_params.get("type")
    if kind == "uninstall":
        bot.forget(claims.get("org_id"), claims.get("inst_id"), via="trigger")
        return PlainTextResponse("Goodbye.")
    if kind != "install":
        return PlainTextResponse("Ignored.")
    if not claims.get("org_id") or not claims.get("inst_id"):
        return PlainTextResponse("Invalid install trigger.", status_code=400)

    redirect_uri = request.query_params.get("redirect_uri")
    known = bot.installations.get(claims["org_id"])
    task: BackgroundTask | None = None
    if known is not None and known.installation_id == claims["inst_id"]:
        pass  # a reloaded page or a retried trigger: the token is already here
    elif claims.get("app_user_code"):
        # The browser waits for this one: the code is single-use and short-lived.
        try:
            await bot.exchange_code(claims)
        except httpx.HTTPError as error:
            bot.record("error", work="exchange_code", error=type(error).__name__)
            return PlainTextResponse("Weather Bot could not finish its setup.", status_code=502)
        task = bot.later(bot.check_token, claims["org_id"])
    elif claims.get("app_user_id"):
        task = bot.later(bot.mint_then_check, claims)
    if redirect_uri:
        return RedirectResponse(bot.safe_redirect(redirect_uri), status_code=303, background=task)
    return PlainTextResponse("Installed.", background=task)


async def webhook(request: Request) -> Response:
    """POST from the API's worker: verify, deduplicate, answer at once, work afterwards."""
    bot = _bot(request)
    body = await request.body()
    try:
        event = bot.webhook.verify(body, dict(request.headers))
    except (WebhookVerificationError, ValueError):  # ValueError: malformed headers or JSON
        return JSONResponse({"detail": "Invalid signature."}, status_code=400)
    if not bot.first_time(request.headers["webhook-id"]):
        return JSONResponse({"detail": "Already handled."})
    return JSONResponse({"detail": "Accepted."}, background=bot.later(bot.handle_event, event))


async def status(request: Request) -> Response:
    """What the bot knows and did (no tokens): for you, and for the end-to-end test."""
    bot = _bot(request)
    return JSONResponse(
        {
            "installations": [installation.public() for installation in bot.installations.values()],
            "activity": bot.activity,
            "duplicates": bot.duplicates,
        }
    )


async def installed(request: Request) -> Response:
    return PlainTextResponse("Weather Bot is installed. Forecast: sunny.")


def create_app(config: Config | None = None) -> Starlette:
    config = config or Config.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=config.api_url, timeout=10) as http:
            app.state.bot = Bot(config, http)
            yield

    return Starlette(
        routes=[
            Route("/giosg/trigger", trigger),
            Route("/giosg/webhook", webhook, methods=["POST"]),
            Route("/status", status),
            Route("/installed", installed),
        ],
        lifespan=lifespan,
    )
