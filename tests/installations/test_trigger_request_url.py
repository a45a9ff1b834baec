"""The one builder of every trigger request (delivery/triggers/tokens.py) and the access token it
carries (auth/access_tokens.py), checked parameter by parameter.

The end-to-end trigger tests (install flow, worker, console, giosg's own library) go through
this builder, but each looks at the parameters its path needs; here every parameter and claim is
pinned for each case, so a condition flipped in the builder cannot hide behind a path that does
not look.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from apps_api.auth.access_tokens import (
    ACCESS_TOKEN_AUDIENCE,
    APP_USER_ACTOR,
    ISSUER,
    decode_access_token,
    encode_access_token,
)
from apps_api.delivery.triggers.tokens import (
    FALLBACK_HOST,
    decode_trigger_data,
    service_host,
    trigger_host,
    trigger_perms,
    trigger_request_url,
    with_query,
)

APP_SECRET = "a" * 64
SECRET_KEY = "k" * 64
APP_ID, ORG_ID, INSTALLATION_ID = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
USER_ID, APP_USER_ID = uuid.uuid4(), uuid.uuid4()


def build(**overrides: Any) -> dict[str, list[str]]:
    """The query of a trigger request, parsed (blank values kept)."""
    values: dict[str, Any] = {
        "trigger_url": "https://app.example.com/trigger?keep=1&type=stale",
        "type_": "install",
        "app_secret": APP_SECRET,
        "secret_key": SECRET_KEY,
        "public_base_url": "https://service.example.com/",
        "app_id": APP_ID,
        "organization_id": ORG_ID,
        "installation_id": INSTALLATION_ID,
        "user_id": USER_ID,
        "perms": ["users", "settings"],
        "app_user_id": APP_USER_ID,
        "app_user_code": "code-1",
        "redirect_uri": "https://service.example.com/done",
    }
    values.update(overrides)
    return parse_qs(urlsplit(trigger_request_url(**values)).query, keep_blank_values=True)


def test_an_install_trigger_carries_every_parameter() -> None:
    query = build()
    assert set(query) == {"keep", "type", "data", "token", "redirect_uri"}
    assert query["keep"] == ["1"] and query["type"] == ["install"]
    assert query["redirect_uri"] == ["https://service.example.com/done"]
    data = decode_trigger_data(query["data"][0], app_secret=APP_SECRET)
    assert data["sub"] == "service.example.com"
    assert (data["app_id"], data["org_id"], data["inst_id"]) == (
        str(APP_ID),
        str(ORG_ID),
        str(INSTALLATION_ID),
    )
    assert (data["user_id"], data["app_user_id"], data["app_user_code"]) == (
        str(USER_ID),
        str(APP_USER_ID),
        "code-1",
    )
    # The data lives ten minutes.
    assert data["exp"] - data["iat"] == 600
    token = decode_access_token(query["token"][0], secret_key=SECRET_KEY)
    assert token is not None
    assert token["perms"] == ["settings", "users"] and "act" not in token
    assert (token["sub"], token["user_id"], token["inst_id"]) == (
        str(USER_ID),
        str(USER_ID),
        str(INSTALLATION_ID),
    )
    # The access token lives fifteen minutes.
    assert token["exp"] - token["iat"] == 900


@pytest.mark.parametrize("type_", ["install", "uninstall"])
def test_without_a_user_or_a_redirect_neither_is_sent(type_: str) -> None:
    query = build(type_=type_, user_id=None, redirect_uri=None)
    assert set(query) == {"keep", "type", "data"}
    data = decode_trigger_data(query["data"][0], app_secret=APP_SECRET)
    assert data["user_id"] is None


def test_an_uninstall_trigger_has_no_token_and_no_redirect_even_when_given() -> None:
    query = build(type_="uninstall")
    assert set(query) == {"keep", "type", "data"}
    assert query["type"] == ["uninstall"]


def test_without_an_installation_or_app_user_the_claims_are_null() -> None:
    query = build(installation_id=None, app_user_id=None, app_user_code=None, user_id=None)
    data = decode_trigger_data(query["data"][0], app_secret=APP_SECRET)
    assert (data["inst_id"], data["app_user_id"], data["app_user_code"]) == (None, None, None)


def test_the_trigger_host_is_the_public_base_urls_or_the_fallback() -> None:
    assert service_host("https://service.example.com:8443/x") == "service.example.com"
    assert service_host(None) is None and service_host("") is None
    assert service_host("not a url") is None
    assert trigger_host("https://service.example.com/") == "service.example.com"
    assert trigger_host(None) == FALLBACK_HOST
    query = build(public_base_url=None)
    assert decode_trigger_data(query["data"][0], app_secret=APP_SECRET)["sub"] == FALLBACK_HOST


def test_perms_are_the_users_cut_to_the_scopes() -> None:
    assert trigger_perms(["users", "settings", "chat"], ["settings", "chat", "reports"]) == [
        "chat",
        "settings",
    ]
    assert trigger_perms(["users"], []) == []


def test_with_query_replaces_same_named_parameters_and_keeps_blank_ones() -> None:
    url = with_query("https://a.example.com/p?x=1&blank=&type=old#frag", {"type": "new"})
    parts = urlsplit(url)
    assert parse_qs(parts.query, keep_blank_values=True) == {"x": ["1"], "blank": [""], "type": ["new"]}
    assert parts.fragment == "frag" and parts.path == "/p"


def test_an_access_token_for_the_app_user_says_so_and_others_do_not() -> None:
    common: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "user_id": USER_ID,
        "organization_id": ORG_ID,
        "app_id": APP_ID,
        "installation_id": None,
    }
    app_user = decode_access_token(encode_access_token(**common, as_app_user=True), secret_key=SECRET_KEY)
    assert app_user is not None and app_user["act"] == APP_USER_ACTOR
    assert app_user["inst_id"] is None and "perms" not in app_user
    plain = decode_access_token(encode_access_token(**common), secret_key=SECRET_KEY)
    assert plain is not None and "act" not in plain and "perms" not in plain
    # An empty perms list is a claim (the user may do nothing here), not a missing one.
    empty = decode_access_token(encode_access_token(**common, perms=[]), secret_key=SECRET_KEY)
    assert empty is not None and empty["perms"] == []


def test_a_bad_access_token_decodes_to_none() -> None:
    common: dict[str, Any] = {
        "user_id": USER_ID,
        "organization_id": ORG_ID,
        "app_id": APP_ID,
        "installation_id": INSTALLATION_ID,
    }
    token = encode_access_token(secret_key=SECRET_KEY, **common)
    assert decode_access_token(token, secret_key="other" * 13) is None
    expired = encode_access_token(secret_key=SECRET_KEY, ttl=timedelta(seconds=-1), **common)
    assert decode_access_token(expired, secret_key=SECRET_KEY) is None
    wrong_audience = jwt.encode({"iss": ISSUER, "aud": "other"}, SECRET_KEY, algorithm="HS256")
    assert decode_access_token(wrong_audience, secret_key=SECRET_KEY) is None
    wrong_issuer = jwt.encode({"iss": "other", "aud": ACCESS_TOKEN_AUDIENCE}, SECRET_KEY, algorithm="HS256")
    assert decode_access_token(wrong_issuer, secret_key=SECRET_KEY) is None
