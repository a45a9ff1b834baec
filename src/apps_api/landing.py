"""`/`: what this service is, with links to the docs and the console; `/favicon.ico` for every page.

Neither is part of the API (not in the OpenAPI document); both need no database.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from apps_api import __version__

FAVICON_URL = "/favicon.ico"

# A small SVG (browsers take an SVG favicon by its content type, whatever the path's suffix).
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#1f5eff"/>'
    '<rect x="7" y="7" width="8" height="8" rx="2" fill="#fff"/>'
    '<rect x="17" y="7" width="8" height="8" rx="2" fill="#fff" opacity=".75"/>'
    '<rect x="7" y="17" width="8" height="8" rx="2" fill="#fff" opacity=".75"/>'
    '<rect x="17" y="17" width="8" height="8" rx="2" fill="#fff"/>'
    "</svg>"
)

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Apps API</title>
  <link rel="icon" href="{FAVICON_URL}" type="image/svg+xml">
  <style>
    body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem;
            color: #1b1f24; }}
    h1 {{ font-size: 1.6rem; }} li {{ margin: .4rem 0; }} code {{ background: #f2f4f7; padding: 0 .2rem; }}
    footer {{ margin-top: 2rem; color: #57606a; font-size: .9rem; }}
  </style>
</head>
<body>
  <h1>Apps API</h1>
  <p>An open implementation of the giosg <strong>Apps API v5</strong>: organizations create apps,
  offer them to partners or to everyone, install them, get a bot app user per installation, and
  receive signed webhooks about changes in the organizations that installed them.</p>
  <ul>
    <li><a href="/console/">Developer console</a>: sign in with a user's email and password
      (<code>apps-api demo</code> prints one) to manage apps, webhooks and installations.</li>
    <li><a href="/docs">API reference</a> (Swagger UI, try requests with
      <code>Authorization: Token &lt;key&gt;</code>) or <a href="/redoc">the same in ReDoc</a>;
      the OpenAPI document is <a href="/openapi.json">/openapi.json</a>.</li>
    <li>Operators provision organizations and users through <code>/internal/v1</code> (a service key).</li>
  </ul>
  <footer>apps-api {__version__}</footer>
</body>
</html>
"""

# The page's own inline style, nothing else: no script, no outside resource.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def landing() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=_HEADERS)


@router.get(FAVICON_URL)
async def favicon() -> Response:
    # A week, immutable: the icon only changes with a release.
    return Response(
        FAVICON_SVG,
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=604800, immutable", "X-Content-Type-Options": "nosniff"},
    )
