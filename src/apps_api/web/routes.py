"""Browser routes answer with pages: what a handler raises becomes an HTML page, never the API's
JSON. `PageError` is an error page anywhere under such a route; a family of pages (the install flow,
the console) subclasses `PageRoute` to render it, and may render other exceptions too."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute


class PageError(Exception):
    """An error page: its status, message and (optional) title, headers and page context."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.title = title
        self.headers = headers or {}
        self.context = context


class PageRoute(APIRoute):
    """A route whose every answer is a page: `PageError` becomes `error_page`, anything else what
    `page_of` makes of it (None: the application's own handlers answer)."""

    def error_page(self, request: Request, error: PageError) -> Response:
        raise NotImplementedError

    async def page_of(self, request: Request, exc: Exception) -> Response | None:
        return None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except PageError as error:
                page = self.error_page(request, error)
                page.headers.update(error.headers)
                return page
            except Exception as exc:
                answer = await self.page_of(request, exc)
                if answer is None:
                    raise
                return answer

        return page_handler


async def handled_status(request: Request, exc: Exception) -> Response | None:
    """What the application's own exception handler answers for `exc` (it decides the status and
    logs: 503 with Retry-After when PostgreSQL is away, else 500), or None without one."""
    handler = next(
        (
            request.app.exception_handlers[cls]
            for cls in type(exc).__mro__
            if cls in request.app.exception_handlers
        ),
        None,
    )
    if handler is None:
        return None
    answer: Response = await handler(request, exc)
    return answer
