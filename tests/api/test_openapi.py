from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from update_openapi_snapshot import SNAPSHOT, render  # noqa: E402


def test_snapshot_matches_live_schema() -> None:
    live = render()
    assert SNAPSHOT.read_text() == live, (
        "openapi.snapshot.json differs from the live schema. If the change is intended, regenerate it with "
        "`python scripts/update_openapi_snapshot.py` and commit the result."
    )


def test_no_422_and_every_operation_documents_its_errors() -> None:
    schema = json.loads(render())
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses: dict[str, Any] = operation["responses"]
            assert "422" not in responses, f"{method.upper()} {path} documents a 422"
            if path.startswith("/api/v5/"):
                assert {"400", "401", "403"} <= set(responses), (
                    f"{method.upper()} {path} lacks error responses"
                )
                for code in ("400", "401", "403"):
                    ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse")


async def test_docs_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = await client.get("/openapi.json")
    assert schema.json()["info"]["title"] == "giosg Apps API"


# --- a precise contract: what generated clients rely on ------------------------------------------


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(render())
    return schema


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(component, attribute, property schema) of every component's attributes."""
    for component, body in schema["components"]["schemas"].items():
        for name, prop in body.get("properties", {}).items():
            yield component, name, prop


def _branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a property (itself when it is not a union)."""
    return [branch for branch in prop.get("anyOf", [prop]) if branch != {"type": "null"}]


def _request_components(schema: dict[str, Any]) -> set[str]:
    """Components used by request bodies, nested ones included."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    walk(schema["components"]["schemas"][name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for item in schema["paths"].values():
        for operation in item.values():
            walk(operation.get("requestBody"))
    return found


def test_every_attribute_is_described_without_internal_names() -> None:
    schema = _schema()
    undocumented = [f"{c}.{n}" for c, n, prop in _properties(schema) if not prop.get("description")]
    assert undocumented == []
    text = json.dumps(schema)
    for internal in ("model_fields_set", "REQUIRED_ATTRIBUTES"):
        assert internal not in text


def test_formats_of_datetimes_ids_and_urls() -> None:
    schema = _schema()
    requests = _request_components(schema)
    for component, name, prop in _properties(schema):
        formats = {branch.get("format") for branch in _branches(prop)}
        if name.endswith("_at"):
            assert formats == {"date-time"}, f"{component}.{name}"
        # An event's resource_id and the operator's external_id are ids of other systems.
        if (name == "id" or name.endswith("_id")) and name not in ("resource_id", "external_id"):
            assert formats == {"uuid"}, f"{component}.{name}"
        # URLs a client sends are documented as URIs (with a pattern of RFC 3986 characters) and
        # the links the service builds are URIs. A URL returned as a client gave it has no
        # format: the validators also accept what RFC 3986 does not (a non-ASCII host, say),
        # and such values may be stored already.
        if name.endswith(("_url", "_uris")) and component in requests:
            for branch in _branches(prop):
                target = branch.get("items", branch)
                assert target.get("format") == "uri" and target.get("pattern"), f"{component}.{name}"
        if name in ("next", "previous"):
            assert formats == {"uri"}, f"{component}.{name}"


def test_closed_sets_are_enums() -> None:
    schema = _schema()
    closed = {
        "trigger_conditions",
        "required_scopes",
        "allowed_scopes",
        "action",
        "status",
        "required_scope",
        "grant_type",
    }
    for component, name, prop in _properties(schema):
        if name in closed:
            for branch in _branches(prop):
                target = branch.get("items", branch)
                assert "enum" in target, f"{component}.{name} has no enum"
    parameters = schema["paths"]["/api/v5/orgs/{organization_id}/owned_apps"]["get"]["parameters"]
    ordering = next(p for p in parameters if p["name"] == "ordering")
    assert ordering["schema"]["enum"] == ["created_at", "-created_at"]


def test_request_bodies_have_no_defaults_and_one_example() -> None:
    schema = _schema()
    components = schema["components"]["schemas"]
    for name in _request_components(schema):
        for attribute, prop in components[name].get("properties", {}).items():
            assert "default" not in prop, f"{name}.{attribute} documents a default"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if "requestBody" not in operation:
                continue
            for media in operation["requestBody"]["content"].values():
                ref = media["schema"]["$ref"].rsplit("/", 1)[1]
                assert len(components[ref].get("examples", [])) == 1, f"{method.upper()} {path}"


def _body_schema(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    ref = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return body


def test_create_and_put_require_what_patch_leaves_optional() -> None:
    schema = _schema()
    app = "/api/v5/orgs/{organization_id}/owned_apps"
    required = ["name", "description", "is_app_user_required", "terms_of_service_url", "privacy_policy_url"]
    assert _body_schema(schema, app, "post")["required"] == required
    assert _body_schema(schema, app + "/{app_id}", "put")["required"] == required
    patch = _body_schema(schema, app + "/{app_id}", "patch")
    assert "required" not in patch
    assert set(patch["properties"]) == set(_body_schema(schema, app, "post")["properties"])
    webhook = app + "/{app_id}/webhooks"
    assert _body_schema(schema, webhook, "post")["required"] == ["endpoint_url"]
    assert _body_schema(schema, webhook + "/{webhook_id}", "put")["required"] == ["endpoint_url"]
    webhook_patch = _body_schema(schema, webhook + "/{webhook_id}", "patch")
    assert "required" not in webhook_patch
    # PATCH refuses null for these: the document does not offer it.
    assert all("anyOf" not in prop for prop in webhook_patch["properties"].values())


def test_read_only_attributes_are_marked() -> None:
    components = _schema()["components"]["schemas"]
    owned = components["OwnedApp"]["properties"]
    for name in ("id", "secret", "created_at", "installation_count", "owned_by_organization"):
        assert owned[name].get("readOnly") is True, name
    for name in ("name", "description", "trigger_conditions", "allowed_redirect_uris"):
        assert "readOnly" not in owned[name], name
    assert all(prop.get("readOnly") is True for prop in components["PublicApp"]["properties"].values())
    assert all("readOnly" not in prop for prop in components["OwnedAppInput"]["properties"].values())


def test_operation_ids_read_as_method_names() -> None:
    schema = _schema()
    ids = [operation["operationId"] for item in schema["paths"].values() for operation in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for operation_id in ids:
        assert operation_id.isidentifier() and operation_id == operation_id.lower(), operation_id
        assert "api_v5" not in operation_id, operation_id
    assert {"list_owned_apps", "create_owned_app", "update_owned_app", "replace_owned_app"} <= set(ids)


def test_error_envelope_is_documented() -> None:
    envelope = _schema()["components"]["schemas"]["ErrorResponse"]
    assert envelope["required"] == ["detail"]
    assert set(envelope["properties"]) == {"detail", "errors"}
