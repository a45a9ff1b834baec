"""`apps-api`: serve, worker, migrate, demo and admin commands (docs/design.md section 9).

Admin commands print exactly one JSON object on stdout; logs and errors go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from apps_api import __version__
from apps_api.cli.catalogue import cmd_approve_app, cmd_register_channel
from apps_api.cli.common import CommandError, check_required_keys, csv_argument, uuid_argument
from apps_api.cli.organizations import (
    cmd_add_partner,
    cmd_create_asset,
    cmd_create_org,
    cmd_remove_partner,
    cmd_set_features,
    cmd_set_subscription,
)
from apps_api.cli.provision import cmd_demo, cmd_keygen, cmd_migrate, cmd_reencrypt
from apps_api.cli.serve import cmd_serve, cmd_worker
from apps_api.cli.users import (
    cmd_create_token,
    cmd_create_user,
    cmd_delete_user,
    cmd_set_password,
    cmd_set_permissions,
)
from apps_api.logs import configure_logging
from apps_api.settings import Settings, get_settings

__all__ = ["CommandError", "build_parser", "main"]

# What `add_subparsers()` returns (argparse names it privately).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace, Settings], int]


def _command(
    commands: Commands, name: str, handler: Handler, summary: str | None = None
) -> argparse.ArgumentParser:
    """A sub-command that runs `handler`; `summary`, when given, lists it in its parent's help."""
    parser = commands.add_parser(name) if summary is None else commands.add_parser(name, help=summary)
    parser.set_defaults(handler=handler)
    return parser


def _with_ids(parser: argparse.ArgumentParser, *options: str) -> argparse.ArgumentParser:
    """Required UUID options (`--org`, `--user`) or, without dashes, positional ones."""
    for option in options:
        if option.startswith("--"):
            parser.add_argument(option, type=uuid_argument, required=True)
        else:
            parser.add_argument(option, type=uuid_argument)
    return parser


def _add_top_commands(commands: Commands) -> None:
    serve = _command(
        commands, "serve", cmd_serve, summary="run the API (and, embedded, PostgreSQL, Redis and the worker)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="do not start the embedded worker")
    serve.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes sharing the port (default 1)"
    )
    _command(commands, "worker", cmd_worker, summary="run the arq worker (webhook delivery)")
    _command(commands, "migrate", cmd_migrate, summary="apply database migrations")
    _command(
        commands,
        "keygen",
        cmd_keygen,
        summary="print a new key for APPS_API_ENCRYPTION_KEYS (or APPS_API_SECRET_KEY)",
    )
    demo = _command(commands, "demo", cmd_demo, summary="create a demo organization, user and token")
    demo.add_argument("--password", default="demo-password", help="password of the demo user (install flow)")


def _add_organization_commands(admin: Commands) -> None:
    create_org = _command(admin, "create-org", cmd_create_org)
    create_org.add_argument("--name", required=True)
    create_org.add_argument(
        "--features", type=csv_argument, default=[], help="comma-separated: apps,app_provider"
    )
    create_org.add_argument("--subscription-days", type=int, default=None)
    create_org.add_argument("--external-id", help="the operator's own id of the organization")

    set_features = _command(
        admin,
        "set-features",
        cmd_set_features,
        summary="give an organization exactly these features; losing one has its consequences",
    )
    _with_ids(set_features, "--org").add_argument(
        "--features",
        type=csv_argument,
        required=True,
        help="comma-separated: apps,app_provider ('' for none)",
    )

    set_subscription = _command(
        admin,
        "set-subscription",
        cmd_set_subscription,
        summary="make an organization's subscription run for D days from now",
    )
    end = _with_ids(set_subscription, "--org").add_mutually_exclusive_group(required=True)
    end.add_argument("--days", type=int, help="days from now (0: ends now)")
    end.add_argument(
        "--no-end", dest="days", action="store_const", const=None, help="a subscription without end"
    )

    _with_ids(_command(admin, "add-partner", cmd_add_partner), "org_a", "org_b")
    remove_summary = "end a partnership; uninstalls what either may no longer install"
    _with_ids(_command(admin, "remove-partner", cmd_remove_partner, summary=remove_summary), "org_a", "org_b")


def _add_user_commands(admin: Commands) -> None:
    create_user = _with_ids(_command(admin, "create-user", cmd_create_user), "--org")
    create_user.add_argument(
        "--permissions", type=csv_argument, default=[], help="comma-separated: settings,users,reports"
    )
    for option in ("--email", "--password", "--first-name", "--last-name"):
        create_user.add_argument(option)
    create_user.add_argument("--external-id", help="the operator's own id of the user")

    set_permissions = _command(
        admin, "set-permissions", cmd_set_permissions, summary="give a user exactly these permissions"
    )
    _with_ids(set_permissions, "--user").add_argument(
        "--permissions",
        type=csv_argument,
        required=True,
        help="comma-separated: settings,users,reports ('' none)",
    )
    set_password = _command(
        admin, "set-password", cmd_set_password, summary="change a password; ends the user's sessions"
    )
    _with_ids(set_password, "--user").add_argument("--password", required=True)
    delete_summary = "soft-delete a user; ends their sessions"
    _with_ids(_command(admin, "delete-user", cmd_delete_user, summary=delete_summary), "--user")


def _add_admin_commands(admin: Commands) -> None:
    _add_organization_commands(admin)
    _add_user_commands(admin)
    _command(
        admin,
        "reencrypt",
        cmd_reencrypt,
        summary="encrypt every stored app secret under the first APPS_API_ENCRYPTION_KEYS key",
    )
    _with_ids(_command(admin, "create-token", cmd_create_token), "--user")
    create_asset = _with_ids(_command(admin, "create-asset", cmd_create_asset), "--org")
    create_asset.add_argument("--url", required=True)
    create_asset.add_argument("--content-type")

    register_channel = _command(
        admin,
        "register-channel",
        cmd_register_channel,
        summary="register (or replace) a channel family other services publish",
    )
    register_channel.add_argument("--pattern", required=True)
    register_channel.add_argument("--scope", required=True)
    register_channel.add_argument("--schema-file", required=True, help="the JSON Schema of `resource`")
    register_channel.add_argument("--actions", default="added,changed,removed", help="comma-separated")
    register_channel.add_argument("--description", default="")
    register_channel.add_argument("--example-file", help="an example resource (JSON)")

    _with_ids(_command(admin, "approve-app", cmd_approve_app), "app")


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
    _add_top_commands(commands)
    admin = commands.add_parser("admin", help="operator commands (JSON output)")
    _add_admin_commands(admin.add_subparsers(dest="admin_command", required=True))
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
            check_required_keys(settings)
        return int(args.handler(args, settings))
    except CommandError as exc:
        sys.stderr.write(f"apps-api: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
