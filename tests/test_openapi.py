from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
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
