"""`apps-api`: serve, worker, migrate, demo and admin commands (docs/design.md section 9).

Admin commands print exactly one JSON object on stdout; logs and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api import __version__
from apps_api.embedded import EmbeddedServices, ensure_services, mark_serving, serving_pid
from apps_api.kit.crypto import configure_encryption
from apps_api.logs import configure_logging
from apps_api.settings import Settings, get_settings

logger = logging.getLogger("apps_api.cli")


class CommandError(Exception):
    """A one-line error for stderr; the command exits non-zero."""


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value}") from None


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


# Generated per state folder when embedded; with an external database they must be the operator's,
# the same in every process (a random secret key per process breaks cursors and sessions between
# processes; without encryption keys every app read and write fails).
_REQUIRED_WITH_EXTERNAL_DATABASE = (
    ("APPS_API_SECRET_KEY", "signs cursors, session cookies and CSRF tokens; any long random string"),
    ("APPS_API_ENCRYPTION_KEYS", "encrypts app secrets at rest; generate one with `apps-api keygen`"),
)


def _check_required_keys(settings: Settings) -> None:
    """With an external database, stop before anything starts when a required key is missing."""
    if settings.database_url is None:
        return
    given = {
        # The default is a random key per process: set means given (by the environment).
        "APPS_API_SECRET_KEY": "secret_key" in settings.model_fields_set
        and bool(settings.secret_key.strip()),
        "APPS_API_ENCRYPTION_KEYS": bool(settings.encryption_keys),
    }
    for variable, purpose in _REQUIRED_WITH_EXTERNAL_DATABASE:
        if not given[variable]:
            raise CommandError(
                f"{variable} is not set; it is required with APPS_API_DATABASE_URL ({purpose})"
            )


def _migrate(settings: Settings) -> None:
    from apps_api.migrate import upgrade

    assert settings.database_url is not None
    upgrade(settings.database_url)


def _prepare(settings: Settings, *, migrate: bool = True) -> EmbeddedServices:
    services = ensure_services(settings)
    configure_encryption(settings.encryption_keys)
    if migrate and "postgres" in services.started:
        # Embedded databases are ours to keep at the latest schema.
        _migrate(settings)
    return services


async def _in_transaction(settings: Settings, action: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    from apps_api.kit.db import create_engine, create_sessionmaker

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await action(session)
    finally:
        await engine.dispose()


def _print(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def _org_json(organization: Any) -> dict[str, Any]:
    return {
        "id": organization.id,
        "name": organization.name,
        "external_id": organization.external_id,
        "features": organization.features,
        "subscription_active": organization.subscription_active,
        "subscription_expires_at": organization.subscription_expires_at,
    }


def _user_json(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "organization_id": user.organization_id,
        "external_id": user.external_id,
        "email": user.email,
        "permissions": user.permissions,
        "is_bot": user.is_bot,
    }


# --- commands -------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from apps_api import serving

    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    embedded = settings.database_url is None or settings.redis_url is None
    worker: subprocess.Popen[bytes] | None = None
    services: EmbeddedServices | None = None
    pid_file: Path | None = None
    # A stop signal during start-up unwinds through the `finally` below like one while serving.
    with serving.stop_signals_raise():
        try:
            services = _prepare(settings)
            # uvicorn worker processes are spawned: they read the resolved servers (embedded ones
            # included: PostgreSQL and Redis take connections from any process) from the environment.
            os.environ["APPS_API_DATABASE_URL"] = settings.database_url or ""
            os.environ["APPS_API_REDIS_URL"] = settings.redis_url or ""
            os.environ["APPS_API_SECRET_KEY"] = settings.secret_key
            os.environ["APPS_API_ENCRYPTION_KEYS"] = settings.encryption_keys or ""
            if embedded and not args.no_worker:
                worker = subprocess.Popen([sys.executable, "-m", "apps_api", "worker"], env=dict(os.environ))
                logger.info("arq worker started (pid %s)", worker.pid)
            config = uvicorn.Config(
                serving.APP_FACTORY,
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers,
                log_config=None,
                proxy_headers=True,
                # apps_api.access logs each request once, with its route and request id.
                access_log=False,
            )
            if embedded:
                pid_file = mark_serving(settings.state_dir)

            def announce() -> None:
                shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host  # noqa: S104
                base = f"http://{shown}:{args.port}"
                logger.info(
                    "serving on %s, %d process(es): docs at %s/docs, console at %s/console/",
                    base,
                    args.workers,
                    base,
                    base,
                )

            if args.workers > 1:
                sockets = [config.bind_socket()]
                # The port is bound here; the worker processes accept on it.
                announce()
                serving.Supervisor(config, sockets=sockets).run()
            else:
                # Logged by the server once it listens (after the app's start-up).
                serving.Server(config, on_listening=announce).run()
        except (serving.GracefulStop, KeyboardInterrupt):
            pass
        finally:
            serving.ignore_stop_signals()
            if pid_file is not None:
                pid_file.unlink(missing_ok=True)
            _stop_worker(worker)
            if services is not None:
                services.stop()
    return 0


def _stop_worker(worker: subprocess.Popen[bytes] | None) -> None:
    if worker is None or worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        # The worker lets attempts in flight finish for up to the webhook timeout + 5 s.
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (uvicorn[standard] brings it), as `serve` gets from uvicorn.

    Its socket transports are native code, where asyncio's pure-Python transport writes were a
    large share of the worker's CPU (figures in bench/ANALYSIS.md).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.kit import arq_adapter
    from apps_api.worker import create_worker

    services = _prepare(settings)
    try:
        asyncio.set_event_loop(_new_event_loop())
        arq_adapter.run(create_worker(settings))
    finally:
        services.stop()
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    services = _prepare(settings, migrate=False)
    try:
        _migrate(settings)
        logger.info("database migrated to the latest revision")
    finally:
        services.stop()
    return 0


def _run_admin(settings: Settings, action: Callable[[AsyncSession], Awaitable[dict[str, Any]]]) -> int:
    from apps_api.platform.service import PlatformError

    _say_where(settings)
    services = _prepare(settings)
    try:
        result = asyncio.run(_in_transaction(settings, action))
    except PlatformError as exc:
        raise CommandError(str(exc)) from None
    finally:
        services.stop()
    _print(result)
    return 0


def _say_where(settings: Settings) -> None:
    """On stderr: the state folder used, and a warning when no `serve` runs on it."""
    if settings.database_url is not None:
        return  # the configured database: no state folder involved
    folder = settings.state_dir.resolve()
    sys.stderr.write(f"apps-api: state folder {folder} (embedded PostgreSQL and Redis)\n")
    if serving_pid(settings.state_dir) is None:
        sys.stderr.write(
            f"apps-api: warning: no `apps-api serve` is running on {folder}; a service started with "
            "another --state-dir will not see this (pass the --state-dir serve uses)\n"
        )


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        organization = await service.create_organization(
            session=session, name="Demo organization", features=["apps", "app_provider"]
        )
        email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
        user = await service.create_user(
            session=session,
            organization_id=organization.id,
            permissions=["settings", "users", "reports"],
            email=email,
            password=args.password,
            first_name="Demo",
            last_name="User",
        )
        _, key = await service.create_token(session=session, user_id=user.id)
        return {
            "organization_id": organization.id,
            "user_id": user.id,
            "token": key,
            "email": email,
            "password": args.password,
        }

    return _run_admin(settings, action)


def _json_file(path: str | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: {exc}") from None


def cmd_register_channel(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from apps_api.kit.errors import APIError
    from apps_api.webhooks import channel_registry, schemas

    values = {
        "pattern": args.pattern,
        "scope": args.scope,
        "actions": [action.strip() for action in args.actions.split(",") if action.strip()],
        "description": args.description,
        "resource_schema": _json_file(args.schema_file),
        "example_resource": _json_file(args.example_file),
    }
    try:
        registration = schemas.ChannelRegistration.model_validate(values)
    except ValidationError as exc:
        raise CommandError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None

    async def action(session: AsyncSession) -> dict[str, Any]:
        try:
            entry = await channel_registry.register_channel(session=session, registration=registration)
        except APIError as exc:
            raise CommandError(f"{exc.detail} {exc.errors or ''}".strip()) from None
        return channel_registry.entry_view(entry).model_dump(mode="json")

    return _run_admin(settings, action)


def cmd_create_org(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        organization = await service.create_organization(
            session=session,
            name=args.name,
            features=args.features,
            subscription_days=args.subscription_days,
            external_id=args.external_id,
        )
        return _org_json(organization)

    return _run_admin(settings, action)


def cmd_set_features(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.operator import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        organization, uninstalled = await service.set_features(
            session=session, organization_id=args.org, features=args.features
        )
        return {**_org_json(organization), "uninstalled_installation_ids": uninstalled}

    return _run_admin(settings, action)


def cmd_set_subscription(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.operator import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        organization = await service.set_subscription(
            session=session, organization_id=args.org, days=args.days
        )
        return _org_json(organization)

    return _run_admin(settings, action)


def cmd_set_permissions(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.operator import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        user = await service.set_permissions(session=session, user_id=args.user, permissions=args.permissions)
        return _user_json(user)

    return _run_admin(settings, action)


def cmd_add_partner(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        partnership = await service.add_partnership(session=session, a=args.org_a, b=args.org_b)
        return {
            "id": f"{partnership.organization_a_id}:{partnership.organization_b_id}",
            "organization_ids": [partnership.organization_a_id, partnership.organization_b_id],
        }

    return _run_admin(settings, action)


def cmd_remove_partner(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.operator import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        removed, uninstalled = await service.end_partnership(session=session, a=args.org_a, b=args.org_b)
        return {
            "organization_ids": [args.org_a, args.org_b],
            "removed": removed,
            "uninstalled_installation_ids": uninstalled,
        }

    return _run_admin(settings, action)


def cmd_create_user(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    if (args.email is None) != (args.password is None):
        raise CommandError("--email and --password go together")

    async def action(session: AsyncSession) -> dict[str, Any]:
        user = await service.create_user(
            session=session,
            organization_id=args.org,
            permissions=args.permissions,
            email=args.email,
            password=args.password,
            first_name=args.first_name,
            last_name=args.last_name,
            external_id=args.external_id,
        )
        return _user_json(user)

    return _run_admin(settings, action)


def cmd_set_password(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        return _user_json(
            await service.set_password(session=session, user_id=args.user, password=args.password)
        )

    return _run_admin(settings, action)


def cmd_delete_user(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        return _user_json(await service.delete_user(session=session, user_id=args.user))

    return _run_admin(settings, action)


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.kit.crypto import new_encryption_key

    sys.stdout.write(new_encryption_key() + "\n")
    return 0


def cmd_reencrypt(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.auth.secrets import reencrypt_secrets
    from apps_api.kit.crypto import EncryptionKeyMissing

    async def action(session: AsyncSession) -> dict[str, Any]:
        try:
            counts = await reencrypt_secrets(session=session)
        except EncryptionKeyMissing as exc:
            raise CommandError(str(exc)) from None
        return {"reencrypted": counts}

    return _run_admin(settings, action)


def cmd_create_token(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        token, key = await service.create_token(session=session, user_id=args.user)
        return {"id": token.id, "token": key, "user_id": token.user_id}

    return _run_admin(settings, action)


def cmd_create_asset(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        asset = await service.create_asset(
            session=session, organization_id=args.org, url=args.url, content_type=args.content_type
        )
        return {
            "id": asset.id,
            "organization_id": asset.organization_id,
            "url": asset.url,
            "kind": asset.kind,
        }

    return _run_admin(settings, action)


def cmd_approve_app(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        app = await service.approve_app(session=session, app_id=args.app)
        return {"id": app.id, "name": app.name, "is_approved": app.is_approved}

    return _run_admin(settings, action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apps-api", description=__doc__)
    parser.add_argument(
        "--state-dir", type=Path, help="state folder of the embedded servers (default ./.apps-api)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log at DEBUG, library chatter included (on stderr)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and, embedded, PostgreSQL, Redis and the worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="do not start the embedded worker")
    serve.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes sharing the port (default 1)"
    )
    serve.set_defaults(handler=cmd_serve)

    commands.add_parser("worker", help="run the arq worker (webhook delivery)").set_defaults(
        handler=cmd_worker
    )
    commands.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)
    commands.add_parser(
        "keygen", help="print a new key for APPS_API_ENCRYPTION_KEYS (or APPS_API_SECRET_KEY)"
    ).set_defaults(handler=cmd_keygen)

    demo = commands.add_parser("demo", help="create a demo organization, user and token")
    demo.add_argument("--password", default="demo-password", help="password of the demo user (install flow)")
    demo.set_defaults(handler=cmd_demo)

    admin = commands.add_parser("admin", help="operator commands (JSON output)")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)

    create_org = admin_commands.add_parser("create-org")
    create_org.add_argument("--name", required=True)
    create_org.add_argument("--features", type=_csv, default=[], help="comma-separated: apps,app_provider")
    create_org.add_argument("--subscription-days", type=int, default=None)
    create_org.add_argument("--external-id", help="the operator's own id of the organization")
    create_org.set_defaults(handler=cmd_create_org)

    set_features = admin_commands.add_parser(
        "set-features", help="give an organization exactly these features; losing one has its consequences"
    )
    set_features.add_argument("--org", type=_uuid, required=True)
    set_features.add_argument(
        "--features", type=_csv, required=True, help="comma-separated: apps,app_provider ('' for none)"
    )
    set_features.set_defaults(handler=cmd_set_features)

    set_subscription = admin_commands.add_parser(
        "set-subscription", help="make an organization's subscription run for D days from now"
    )
    set_subscription.add_argument("--org", type=_uuid, required=True)
    set_subscription_end = set_subscription.add_mutually_exclusive_group(required=True)
    set_subscription_end.add_argument("--days", type=int, help="days from now (0: ends now)")
    set_subscription_end.add_argument(
        "--no-end", dest="days", action="store_const", const=None, help="a subscription without end"
    )
    set_subscription.set_defaults(handler=cmd_set_subscription)

    add_partner = admin_commands.add_parser("add-partner")
    add_partner.add_argument("org_a", type=_uuid)
    add_partner.add_argument("org_b", type=_uuid)
    add_partner.set_defaults(handler=cmd_add_partner)

    remove_partner = admin_commands.add_parser(
        "remove-partner", help="end a partnership; uninstalls what either may no longer install"
    )
    remove_partner.add_argument("org_a", type=_uuid)
    remove_partner.add_argument("org_b", type=_uuid)
    remove_partner.set_defaults(handler=cmd_remove_partner)

    create_user = admin_commands.add_parser("create-user")
    create_user.add_argument("--org", type=_uuid, required=True)
    create_user.add_argument(
        "--permissions", type=_csv, default=[], help="comma-separated: settings,users,reports"
    )
    create_user.add_argument("--email")
    create_user.add_argument("--password")
    create_user.add_argument("--first-name")
    create_user.add_argument("--last-name")
    create_user.add_argument("--external-id", help="the operator's own id of the user")
    create_user.set_defaults(handler=cmd_create_user)

    set_permissions = admin_commands.add_parser(
        "set-permissions", help="give a user exactly these permissions"
    )
    set_permissions.add_argument("--user", type=_uuid, required=True)
    set_permissions.add_argument(
        "--permissions", type=_csv, required=True, help="comma-separated: settings,users,reports ('' none)"
    )
    set_permissions.set_defaults(handler=cmd_set_permissions)

    set_password = admin_commands.add_parser(
        "set-password", help="change a password; ends the user's sessions"
    )
    set_password.add_argument("--user", type=_uuid, required=True)
    set_password.add_argument("--password", required=True)
    set_password.set_defaults(handler=cmd_set_password)

    delete_user = admin_commands.add_parser("delete-user", help="soft-delete a user; ends their sessions")
    delete_user.add_argument("--user", type=_uuid, required=True)
    delete_user.set_defaults(handler=cmd_delete_user)

    reencrypt = admin_commands.add_parser(
        "reencrypt", help="encrypt every stored app secret under the first APPS_API_ENCRYPTION_KEYS key"
    )
    reencrypt.set_defaults(handler=cmd_reencrypt)

    create_token = admin_commands.add_parser("create-token")
    create_token.add_argument("--user", type=_uuid, required=True)
    create_token.set_defaults(handler=cmd_create_token)

    create_asset = admin_commands.add_parser("create-asset")
    create_asset.add_argument("--org", type=_uuid, required=True)
    create_asset.add_argument("--url", required=True)
    create_asset.add_argument("--content-type")
    create_asset.set_defaults(handler=cmd_create_asset)

    register_channel = admin_commands.add_parser(
        "register-channel", help="register (or replace) a channel family other services publish"
    )
    register_channel.add_argument("--pattern", required=True)
    register_channel.add_argument("--scope", required=True)
    register_channel.add_argument("--schema-file", required=True, help="the JSON Schema of `resource`")
    register_channel.add_argument("--actions", default="added,changed,removed", help="comma-separated")
    register_channel.add_argument("--description", default="")
    register_channel.add_argument("--example-file", help="an example resource (JSON)")
    register_channel.set_defaults(handler=cmd_register_channel)

    approve_app = admin_commands.add_parser("approve-app")
    approve_app.add_argument("app", type=_uuid)
    approve_app.set_defaults(handler=cmd_approve_app)
    return parser


# Commands whose whole output is one JSON object: at the default level nothing else is printed
# (embedded PostgreSQL's set-up, alembic, platformdirs' warnings are chatter to a script).
_JSON_COMMANDS = frozenset({"demo", "admin"})
# The commands that run the service or change its schema: they check the keys before anything.
_NEEDS_KEYS = frozenset({"serve", "worker", "migrate"})


def _log_level(args: argparse.Namespace, settings: Settings) -> str:
    """DEBUG with --verbose; WARNING for the JSON commands unless APPS_API_LOG_LEVEL=DEBUG."""
    # Library warnings (platformdirs, ...) become log records, filtered by level like the rest.
    logging.captureWarnings(True)
    if args.verbose:
        return "DEBUG"
    level = settings.log_level.upper()
    if args.command in _JSON_COMMANDS and level != "DEBUG":
        return "WARNING"
    return level


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    if args.state_dir is not None:
        settings.state_dir = args.state_dir
    if args.verbose:
        # Processes this command starts (uvicorn workers, the embedded worker) log at DEBUG too.
        settings.log_level = os.environ["APPS_API_LOG_LEVEL"] = "DEBUG"
    configure_logging(_log_level(args, settings), settings.log_json)
    if args.command in _JSON_COMMANDS and not logging.getLogger().isEnabledFor(logging.DEBUG):
        # Library warnings (platformdirs' XDG_RUNTIME_DIR) are chatter to a script: errors only.
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
    try:
        if args.command in _NEEDS_KEYS:
            _check_required_keys(settings)
        return int(args.handler(args, settings))
    except CommandError as exc:
        sys.stderr.write(f"apps-api: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
