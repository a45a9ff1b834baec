"""The browser pages' session (the install flow's and the console's, one sign-in): a signed cookie,
CSRF tokens bound to it, and `next` checks.

The cookie is stateless (itsdangerous, keyed with `settings.secret_key`, so every API process
accepts it) and carries a random session id `sid`, and after login the user's id, the user's
session epoch and a digest of their password hash. A session is valid only while the user's
epoch is the one it was issued with: logging out, changing the password and deleting the user
increment it, so a cookie saved before is worthless afterwards (`users.session_epoch`).
CSRF tokens are the `sid` signed under another salt: a form posted from another site cannot know them.

A successful sign-in also sets a device cookie (OWASP's "device cookies"): the user's id and a
random nonce, signed under a salt of its own and kept for months, also after logging out. A
browser holding one for an account still signs in to it while strangers' failures have locked
the account (`web.accounts.throttled_login`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from apps_api.kit.security import constant_time_equals
from apps_api.models import User

COOKIE_NAME = "apps_api_install_session"
# Only the browser pages see the cookie (the install flow and the developer console, which
# share one sign-in), never the JSON API: the same cookie is set once for each page prefix.
COOKIE_PATH = "/apps/"
CONSOLE_COOKIE_PATH = "/console/"
COOKIE_PATHS = (COOKIE_PATH, CONSOLE_COOKIE_PATH)
SESSION_TTL_SECONDS = 2 * 60 * 60
_SESSION_SALT = "apps-api.install-flow.session"
_CSRF_SALT = "apps-api.install-flow.csrf"
DEVICE_COOKIE_NAME = "apps_api_device"
DEVICE_TTL_SECONDS = 180 * 24 * 60 * 60
_DEVICE_SALT = "apps-api.sign-in.device"
MAX_NEXT_LENGTH = 2000


@dataclass(frozen=True)
class BrowserSession:
    """What the cookie says: a session id and, once logged in, who."""

    sid: str
    user_id: uuid.UUID | None = None
    password_digest: str | None = None
    epoch: int | None = None


@dataclass(frozen=True)
class DeviceCookie:
    """A browser where this user signed in before: the user and the cookie's own random nonce."""

    user_id: uuid.UUID
    nonce: str


def _serializer(secret_key: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=salt)


def new_session(user: User | None = None) -> BrowserSession:
    """A fresh session (new id: logging in never keeps a pre-login id)."""
    if user is None:
        return BrowserSession(sid=secrets.token_urlsafe(24))
    return BrowserSession(
        sid=secrets.token_urlsafe(24),
        user_id=user.id,
        password_digest=password_digest(user),
        epoch=user.session_epoch,
    )


def password_digest(user: User) -> str:
    """A short digest of the password hash; sessions die when it changes."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:32]


def read_session(request: Request, *, secret_key: str) -> BrowserSession | None:
    """The session of a valid, unexpired cookie, or None."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    try:
        data: Any = _serializer(secret_key, _SESSION_SALT).loads(raw, max_age=SESSION_TTL_SECONDS)
    except BadSignature:  # also SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
        return None
    user_id: uuid.UUID | None = None
    if data.get("uid") is not None:
        try:
            user_id = uuid.UUID(str(data["uid"]))
        except ValueError:
            return None
    pwd = data.get("pwd")
    epoch = data.get("ep")
    return BrowserSession(
        sid=data["sid"],
        user_id=user_id,
        password_digest=pwd if isinstance(pwd, str) else None,
        epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
    )


def is_https(request: Request, *, public_base_url: str | None) -> bool:
    if public_base_url:
        return public_base_url.startswith("https://")
    return request.url.scheme == "https"


def write_session(
    response: Response, browser_session: BrowserSession, *, secret_key: str, secure: bool
) -> None:
    """Set the signed cookie: HttpOnly, SameSite=Lax, Secure over https, with an expiry."""
    payload: dict[str, Any] = {"sid": browser_session.sid}
    if browser_session.user_id is not None:
        payload["uid"] = str(browser_session.user_id)
        payload["pwd"] = browser_session.password_digest
        payload["ep"] = browser_session.epoch
    value = _serializer(secret_key, _SESSION_SALT).dumps(payload)
    for path in COOKIE_PATHS:
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=SESSION_TTL_SECONDS,
            path=path,
            httponly=True,
            samesite="lax",
            secure=secure,
        )


def set_sign_in_cookies(response: Response, user: User, *, secret_key: str, secure: bool) -> None:
    """After a successful sign-in (every sign-in form): a fresh session and a new device cookie."""
    write_session(response, new_session(user), secret_key=secret_key, secure=secure)
    value = _serializer(secret_key, _DEVICE_SALT).dumps({"uid": str(user.id), "n": secrets.token_urlsafe(24)})
    for path in COOKIE_PATHS:
        response.set_cookie(
            DEVICE_COOKIE_NAME,
            value,
            max_age=DEVICE_TTL_SECONDS,
            path=path,
            httponly=True,
            samesite="lax",
            secure=secure,
        )


def read_device(request: Request, *, secret_key: str) -> DeviceCookie | None:
    """The device cookie of a valid, unexpired signature, or None."""
    raw = request.cookies.get(DEVICE_COOKIE_NAME)
    if not raw:
        return None
    try:
        data: Any = _serializer(secret_key, _DEVICE_SALT).loads(raw, max_age=DEVICE_TTL_SECONDS)
        user_id = uuid.UUID(str(data["uid"]))
        nonce = data["n"]
    except (BadSignature, ValueError, TypeError, KeyError):
        return None
    return DeviceCookie(user_id=user_id, nonce=nonce) if isinstance(nonce, str) and nonce else None


def clear_session(response: Response, *, secure: bool) -> None:
    for path in COOKIE_PATHS:
        response.delete_cookie(COOKIE_NAME, path=path, httponly=True, samesite="lax", secure=secure)


def csrf_token(browser_session: BrowserSession, *, secret_key: str) -> str:
    """The token every form of this session must post back."""
    return _serializer(secret_key, _CSRF_SALT).dumps(browser_session.sid)


def csrf_valid(browser_session: BrowserSession | None, token: str | None, *, secret_key: str) -> bool:
    """True when `token` was issued for this very session and has not expired."""
    if browser_session is None or not token:
        return False
    try:
        sid = _serializer(secret_key, _CSRF_SALT).loads(token, max_age=SESSION_TTL_SECONDS)
    except BadSignature:
        return False
    return isinstance(sid, str) and constant_time_equals(sid, browser_session.sid)


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, default ports made explicit; None if not one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return None
    return scheme, parts.hostname.lower(), port


def _unsafe(value: str) -> bool:
    """Backslashes (browsers read a backslash as `/`), whitespace and control characters (browsers
    strip them, so `/<tab>/host` would be `//host`)."""
    return "\\" in value or any(ord(char) < 0x21 or ord(char) == 0x7F for char in value)


def safe_next(value: str | None, *, origin: str) -> str | None:
    """`next` as a same-origin path, `/` when absent, None when it must be refused.

    The spec's rule is about the origin: `next` is a path (starting with one `/`), or an absolute
    URL whose origin (scheme, host, port) is `origin`, this service's public origin; the latter
    becomes its path, query and fragment. Refused: other origins, `javascript:` and other
    schemes, protocol-relative `//host`, credentials in the URL, backslashes, whitespace and
    control characters, anything over 2000 characters.
    """
    if value is None or value == "":
        return "/"
    if len(value) > MAX_NEXT_LENGTH or _unsafe(value):
        return None
    path = value if value.startswith("/") else _path_of_own_url(value, origin=origin)
    if path is None or not path.startswith("/") or path.startswith("//"):
        return None
    return path


def _path_of_own_url(url: str, *, origin: str) -> str | None:
    """An absolute URL of `origin` (no credentials in it) as its path, query and fragment, else None."""
    parts = urlsplit(url)
    own = _origin(origin)
    if own is None or _origin(url) != own or parts.username is not None or parts.password is not None:
        return None
    return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
