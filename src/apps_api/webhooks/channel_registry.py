"""The channel catalogue as a whole: the service's own families and those the operator registered.

The operator registers the families its other services publish through ingestion
(`apps-api admin register-channel`, `POST /internal/v1/webhook_channels`); ingestion then checks
each event of a registered family: its action, its scope and its resource against the schema.
Channels of no registered family are accepted as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from jsonschema import Draft202012Validator, SchemaError, ValidationError
from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.driver import CompiledStatement, ReadConnection
from apps_api.kit.errors import BadRequest
from apps_api.models import WebhookChannel
from apps_api.models.base import utcnow
from apps_api.webhooks import channel_schemas
from apps_api.webhooks.catalogue import (
    BUILTIN,
    CatalogueEntry,
    changes_schema,
    entries_of,
    example_body,
    example_channel,
    pattern_matches,
)

MAX_REGISTERED = 200


_channels = cast(Table, WebhookChannel.__table__)
# The operator's registered families (a short table, read whole), on a GET's read connection or
# in a write's transaction alike.
_REGISTERED = CompiledStatement(select(*_channels.c).limit(bindparam("limit")))


def registered_entry(row: Any) -> CatalogueEntry:
    """The catalogue entry of a registered family (a row of `webhook_channels`, by column name)."""
    pattern, actions, example_resource = row["pattern"], row["actions"], row["example_resource"]
    schema = dict(row["resource_schema"])
    schemas_by_action = {
        action: changes_schema(schema) if action == "changed" else schema for action in actions
    }
    examples = {}
    if example_resource is not None:
        resource_id = str(example_resource.get("id", "example"))
        examples = {
            action: example_body(
                pattern=pattern, action=action, resource_id=resource_id, resource=example_resource
            )
            for action in actions
        }
    return CatalogueEntry(
        id=row["id"],
        name=pattern,
        pattern=pattern,
        description=row["description"],
        actions=tuple(actions),
        scope=row["scope"],
        subscribable=True,
        source="operator",
        resource_schemas=schemas_by_action,
        examples=examples,
        created_at=row["created_at"],
    )


async def registered_entries(*, db: AsyncSession | ReadConnection) -> list[CatalogueEntry]:
    """The operator's registered families."""
    return [registered_entry(row) for row in await _REGISTERED.fetch(db, limit=MAX_REGISTERED)]


async def catalogue(*, db: AsyncSession | ReadConnection) -> list[CatalogueEntry]:
    """Every channel family: the service's own, then the registered ones."""
    return [*BUILTIN, *await registered_entries(db=db)]


def entry_view(entry: CatalogueEntry) -> channel_schemas.WebhookChannel:
    """The API's view of a catalogue entry."""
    return channel_schemas.WebhookChannel.model_validate(
        {
            "id": entry.id,
            "pattern": entry.pattern,
            "description": entry.description,
            "actions": list(entry.actions),
            "scope": entry.scope,
            "subscribable": entry.subscribable,
            "source": entry.source,
            "resource_schemas": entry.resource_schemas,
            "examples": entry.examples,
            "created_at": entry.created_at,
        }
    )


def _check_registration(registration: channel_schemas.ChannelRegistration) -> None:
    """400 for a family that overlaps the service's own or whose schema or example is invalid."""
    pattern = registration.pattern
    for entry in BUILTIN:
        if pattern_matches(pattern, example_channel(entry.pattern)) or pattern_matches(
            entry.pattern, example_channel(pattern)
        ):
            raise BadRequest.field("pattern", f"Overlaps the service's own channel `{entry.pattern}`.")
    try:
        Draft202012Validator.check_schema(registration.resource_schema)
    except SchemaError as error:
        raise BadRequest.field("resource_schema", f"Not a valid JSON Schema: {error.message}") from None
    if registration.example_resource is not None:
        errors = _resource_errors(
            Draft202012Validator(registration.resource_schema),
            registration.example_resource,
            "example_resource",
        )
        if errors:
            raise BadRequest(errors=errors)


async def register_channel(
    *, session: AsyncSession, registration: channel_schemas.ChannelRegistration
) -> CatalogueEntry:
    """Register (or replace, by pattern) a family another service publishes."""
    _check_registration(registration)
    now = utcnow()
    values: dict[str, Any] = {
        "scope": registration.scope,
        "actions": list(registration.actions),
        "description": registration.description,
        "resource_schema": registration.resource_schema,
        "example_resource": registration.example_resource,
        "updated_at": now,
    }
    statement = (
        insert(WebhookChannel)
        .values(pattern=registration.pattern, created_at=now, **values)
        .on_conflict_do_update(index_elements=[WebhookChannel.pattern], set_=values)
        .returning(*_channels.c)
    )
    row = (await session.execute(statement)).mappings().one()
    return registered_entry(row)


def _resource_errors(validator: Draft202012Validator, resource: Any, prefix: str) -> dict[str, list[str]]:
    """The schema's complaints about a resource, by field (`prefix.path.to.attribute`)."""
    errors: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(resource), key=lambda e: list(map(str, e.absolute_path))):
        errors.setdefault(_field(prefix, error), []).append(error.message)
    return errors


def _field(prefix: str, error: ValidationError) -> str:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        # Name the missing attribute itself, not the object that lacks it.
        # (one error per missing attribute, each with the whole list: the message names it)
        missing = [
            name
            for name in error.validator_value
            if name not in error.instance and error.message.startswith(repr(name))
        ]
        path.extend(missing[:1])
    return ".".join([prefix, *path])


def check_ingested(batch: channel_schemas.IngestBatch, entries: Sequence[CatalogueEntry]) -> None:
    """400 naming each field of the batch's events that their registered family refuses."""
    errors: dict[str, list[str]] = {}
    validators: dict[tuple[str, str], Draft202012Validator] = {}
    for index, event in enumerate(batch.events):
        for entry in entries_of(event.channel, entries):
            if event.action not in entry.actions:
                allowed = ", ".join(entry.actions)
                errors.setdefault(f"events.{index}.action", []).append(
                    f"`{entry.pattern}` has the actions {allowed}."
                )
                continue
            if event.required_scope != entry.scope:
                errors.setdefault(f"events.{index}.required_scope", []).append(
                    f"`{entry.pattern}` needs the `{entry.scope}` scope."
                )
            key = (entry.pattern, event.action)
            validator = validators.get(key)
            if validator is None:
                validator = validators[key] = Draft202012Validator(entry.resource_schemas[event.action])
            for name, messages in _resource_errors(
                validator, event.resource, f"events.{index}.resource"
            ).items():
                errors.setdefault(name, []).extend(messages)
    if errors:
        raise BadRequest("An event does not fit its channel's registered schema.", errors=errors)
