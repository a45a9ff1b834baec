"""Regenerate openapi.snapshot.json from the live schema: python scripts/update_openapi_snapshot.py"""

from __future__ import annotations

import json
from pathlib import Path

from apps_api.main import create_app
from apps_api.settings import Settings

SNAPSHOT = Path(__file__).resolve().parents[1] / "openapi.snapshot.json"


def render() -> str:
    schema = create_app(Settings(database_url="postgresql://unused/unused", redis_url=None)).openapi()
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SNAPSHOT.write_text(render())
    print(f"wrote {SNAPSHOT}")
