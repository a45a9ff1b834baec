"""HTML pages: one Jinja2 environment (autoescaped), one set of security headers, one `render`.

Every page is kept out of frames, caches and other sites' forms; its Content-Security-Policy
(`Csp`) names what it loads, and the origins its forms may be redirected to (CSP `form-action`
covers redirects: an app's trigger URL after installing or from the console).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

STATIC = Path(__file__).resolve().parents[1] / "static"

templates = Environment(
    loader=PackageLoader("apps_api", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Csp:
    """A page family's Content-Security-Policy: what it loads (`sources`), and whether the origins
    its forms go to may also be framed (the console's `manual_dialog`)."""

    sources: str
    frames_origins: bool = False

    def header(self, origins: Iterable[str] = ()) -> str:
        listed = "".join(f" {origin}" for origin in sorted(set(origins)))
        frames = f" frame-src 'self'{listed};" if self.frames_origins and listed else ""
        return f"{self.sources}; form-action 'self'{listed};{frames} frame-ancestors 'none'; base-uri 'none'"


# The install flow: no script at all; app icons from anywhere.
INSTALL_FLOW_CSP = Csp("default-src 'none'; style-src 'self'; img-src https: http: data:")
# The console: one same-origin script (copy buttons, pending deliveries that re-read their page:
# `connect-src 'self'`; every page works without it).
CONSOLE_CSP = Csp(
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "img-src 'self' https: data:",
    frames_origins=True,
)


def render(
    template: str,
    *,
    csp: Csp,
    origins: Iterable[str] = (),
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """`template` with `context`, under `csp` (plus `origins` for its forms) and the security headers."""
    html = templates.get_template(template).render(**context)
    headers = {"Content-Security-Policy": csp.header(origins), **SECURITY_HEADERS}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def static_file(name: str, media_type: str) -> FileResponse:
    """A stylesheet or script of the pages, cached for an hour."""
    return FileResponse(
        STATIC / name, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"}
    )
