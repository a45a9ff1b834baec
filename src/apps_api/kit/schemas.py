"""Base schemas and the embedded objects every view shares (docs/design.md section 3)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# --- documentation-only annotations -----------------------------------------------------------
# The OpenAPI document must state what the API enforces and what it returns, but validation
# (and its 400 texts) stays in the validators: these add to the generated JSON schema only.


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes Annotated metadata
class SchemaHint:
    """Merges `values` into the JSON schema of the annotated type (formats, patterns, enums)."""

    values: Mapping[str, Any]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.values)
        return schema


def hint(**values: Any) -> SchemaHint:
    return SchemaHint(values)


def one_of(values: Iterable[str]) -> SchemaHint:
    """A closed set of strings, checked by a validator with its own message."""
    return SchemaHint({"enum": list(values)})


def items_one_of(values: Iterable[str]) -> SchemaHint:
    """A list whose items come from a closed set of strings."""
    return SchemaHint({"items": {"type": "string", "enum": list(values)}})


# A string the validators refuse when empty or only whitespace.
NOT_BLANK = r"\S"
# http(s) URLs in the form clients should send: RFC 3986 characters only (the validators are
# more lenient, so every URL written this way is accepted). A host, an optional port, a path,
# a query and a fragment.
_URL_CHARACTER = r"(%[0-9A-Fa-f]{2}|[A-Za-z0-9._~!$&'()*+,;=:@/-])"
_URL_HEAD = r"^https?://[A-Za-z0-9._~!$&'()*+,;=-]+(:[0-9]{1,4})?"
URL_NO_FRAGMENT_PATTERN = _URL_HEAD + rf"(/{_URL_CHARACTER}*)?(\?({_URL_CHARACTER}|\?)*)?$"
HTTP_URL_PATTERN = URL_NO_FRAGMENT_PATTERN.removesuffix("$") + rf"(#({_URL_CHARACTER}|\?)*)?$"
HTTPS_URL_PATTERN = HTTP_URL_PATTERN.replace("https?", "https", 1)


def iso_utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


UTCDateTime = Annotated[
    datetime, PlainSerializer(iso_utc, return_type=str, when_used="json"), hint(format="date-time")
]
# The years a datetime a client sends may fall in (UTC). Python's datetimes end in year 9999 and
# PostgreSQL's start in 4713 BC: a year's margin each side keeps the conversion to UTC and the
# service's `+ timedelta` arithmetic (at most days) from overflowing, and no input of the API
# means anything before the epoch.
MIN_INPUT_YEAR = 1970
MAX_INPUT_YEAR = 9998


def bounded_utc(value: datetime) -> datetime:
    """`value` in UTC (no offset: UTC); ValueError when it is outside years 1970..9998 (UTC)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        utc = aware.astimezone(UTC)
    except (OverflowError, ValueError):  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        utc = None
    if utc is None or not MIN_INPUT_YEAR <= utc.year <= MAX_INPUT_YEAR:
        raise ValueError(
            f"Must be between {MIN_INPUT_YEAR}-01-01T00:00:00Z and {MAX_INPUT_YEAR}-12-31T23:59:59Z."
        )
    return utc


# Every datetime the API reads (bodies and query parameters): ISO-8601, no offset means UTC,
# normalized to UTC and bounded (a 400 naming the field, never an overflow's 500).
InputDateTime = Annotated[datetime, AfterValidator(bounded_utc)]
# An absolute URL the service builds (a URL a client gave is returned as given: no format).
Uri = Annotated[str, hint(format="uri")]


def _read_only(editable: Iterable[str]) -> Callable[[dict[str, Any]], None]:
    kept = frozenset(editable)

    def document(schema: dict[str, Any]) -> None:
        for name, prop in schema.get("properties", {}).items():
            if name not in kept:
                prop["readOnly"] = True

    return document


def resource_view(*, editable: Iterable[str] = ()) -> ConfigDict:
    """Config of a response view: every attribute `readOnly` except those a client may write."""
    return ConfigDict(from_attributes=True, json_schema_extra=_read_only(editable))


def request_body(
    *,
    example: dict[str, Any] | None = None,
    required: Iterable[str] | None = None,
    not_null: Iterable[str] = (),
) -> ConfigDict:
    """Config of a request body's schema as one operation accepts it.

    No `default` is documented: a generated client must send only what its caller set, since
    an omitted attribute and a default one do not mean the same (PATCH, PUT). `required` lists
    what the operation demands when the check is not the model's own (None: the model's);
    `not_null` drops `null` from attributes the validators refuse as null. `example`: one per
    request body (nested objects need none).
    """
    required_names = None if required is None else tuple(required)
    refuse_null = frozenset(not_null)

    def document(schema: dict[str, Any]) -> None:
        properties: dict[str, Any] = schema.get("properties", {})
        for name, prop in properties.items():
            prop.pop("default", None)
            if name in refuse_null and "anyOf" in prop:
                branches = [branch for branch in prop.pop("anyOf") if branch != {"type": "null"}]
                if len(branches) == 1:
                    prop.update(branches[0])
                else:
                    prop["anyOf"] = branches
        if required_names is not None:
            schema.pop("required", None)
            if required_names:
                schema["required"] = [name for name in properties if name in required_names]
        if example is not None:
            schema["examples"] = [example]

    return ConfigDict(json_schema_extra=document)


class Schema(BaseModel):
    """A response view: its attributes are read-only unless a subclass names the editable ones."""

    model_config = resource_view()


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


class InputSchema(BaseModel):
    """Request bodies: unknown and read-only attributes are ignored (a client may PUT back a GET).

    Documented without defaults (request_body()); a body's own model_config adds its example
    and, where the operation decides, its required list.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, **request_body())

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL cannot store U+0000 in text or jsonb: a 400 naming the field, not a 500.
        # After validation, nested InputSchemas are models (they check their own fields).
        if _contains_nul(value):
            raise ValueError("Must not contain the NUL character (U+0000).")
        return value


# What the embeds read of a row (an ORM object of models/ fits): kit stands below the models
# and imports none, not even for typing (tests/kit/test_import_graph.py).


class EmbeddedOrganization(Protocol):
    """An organization as `OrganizationEmbed.of()` reads it."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def name(self) -> str: ...


class EmbeddedUser(Protocol):
    """A user as `UserEmbed.of()` reads it."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def full_name(self) -> str: ...
    @property
    def alias(self) -> str | None: ...
    @property
    def organization_id(self) -> uuid.UUID: ...
    @property
    def is_bot(self) -> bool: ...
    @property
    def avatar_url(self) -> str | None: ...


class OrganizationEmbed(Schema):
    """An organization, as embedded in other resources."""

    id: uuid.UUID = Field(description="The ID of the organization.")
    name: str = Field(description="Name of the organization.")

    @classmethod
    def of(cls, organization: EmbeddedOrganization) -> OrganizationEmbed:
        return cls(id=organization.id, name=organization.name)


class UserEmbed(Schema):
    """A user (or an app user), as embedded in other resources."""

    id: uuid.UUID = Field(description="The ID of the user.")
    first_name: str | None = Field(description="First name of the user.")
    last_name: str | None = Field(description="Last name of the user.")
    full_name: str = Field(description="First and last name, separated by a space.")
    alias: str | None = Field(description="The name the user shows to visitors, if any.")
    organization_id: uuid.UUID = Field(description="The ID of the organization the user belongs to.")
    is_bot: bool = Field(description="Whether the user is an app user (a bot) rather than a person.")
    avatar: str | None = Field(description="URL of the user's avatar image.")

    @classmethod
    def of(cls, user: EmbeddedUser) -> UserEmbed:
        return cls(
            id=user.id,
            first_name=user.first_name,
            last_name=user.last_name,
            full_name=user.full_name,
            alias=user.alias,
            organization_id=user.organization_id,
            is_bot=user.is_bot,
            avatar=user.avatar_url,
        )


class AssetEmbed(Schema):
    """An uploaded file (the icon of an app), as embedded in other resources."""

    id: uuid.UUID = Field(description="The ID of the asset.")
    url: str = Field(description="URL where the asset can be downloaded.")
    kind: str = Field(description="What the asset is, such as `image`.")
    content_type: str | None = Field(description="MIME type of the asset.")
    size: int | None = Field(description="Size of the asset in bytes.")
    width: int | None = Field(description="Width of an image in pixels.")
    height: int | None = Field(description="Height of an image in pixels.")


def user_embed_json(row: Any, prefix: str) -> dict[str, Any] | None:
    """`UserEmbed` of the `<prefix>id`, `<prefix>first_name`, ... columns of a row (None without a user)."""
    user_id = row[prefix + "id"]
    if user_id is None:
        return None
    first_name, last_name = row[prefix + "first_name"], row[prefix + "last_name"]
    return {
        "id": user_id,
        "first_name": first_name,
        "last_name": last_name,
        # User.full_name, spelled out for a row.
        "full_name": " ".join(part for part in (first_name, last_name) if part),
        "alias": row[prefix + "alias"],
        "organization_id": row[prefix + "organization_id"],
        "is_bot": row[prefix + "is_bot"],
        "avatar": row[prefix + "avatar_url"],
    }
