"""The SDK flow in Python, on a client generated from openapi.yaml by openapi-python-client:
register, login (body delivery), getMe, refresh, reuse of the old refresh token (401, the
session is revoked: its new refresh token and its access token fail too), logout.

Usage: PYTHONPATH=target/sdk-py python tests/sdk/flow.py http://127.0.0.1:PORT
(the server runs with AUTHD_REUSE_GRACE_SECS=0, so a replay is reuse at once).
"""

import os
import random
import sys
import time

from authd_client import AuthenticatedClient, Client
from authd_client.api.auth import login, logout, refresh, register
from authd_client.api.me import get_me
from authd_client.api.sessions import list_security_events, list_sessions
from authd_client.models import (
    Delivery,
    ErrorBody,
    LoginRequest,
    LogoutScope,
    Me,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserCreated,
)
from authd_client.types import Response, Unset

STEPS = 0


def check(cond: bool, what: str) -> None:
    global STEPS
    if not cond:
        raise AssertionError(f"check failed: {what}")
    STEPS += 1


def expect_error(resp: Response, status: int, code: str) -> None:
    check(resp.status_code == status, f"status {resp.status_code}, expected {status}: {resp.content!r}")
    check(isinstance(resp.parsed, ErrorBody), f"an ErrorBody: {resp.parsed!r}")
    assert isinstance(resp.parsed, ErrorBody)
    check(resp.parsed.error == code, f"error {resp.parsed.error}, expected {code}")
    check(bool(resp.parsed.message), "error message present")


def do_login(client: Client, email: str, password: str) -> tuple[TokenResponse, str]:
    resp = login.sync_detailed(
        client=client, body=LoginRequest(email=email, password=password, delivery=Delivery.BODY)
    )
    check(resp.status_code == 200, f"login: {resp.status_code} {resp.content!r}")
    tokens = resp.parsed
    assert isinstance(tokens, TokenResponse)
    check(tokens.token_type == "Bearer", "token_type is Bearer")
    check(tokens.expires_in > 0 and tokens.refresh_expires_in > 0, "lifetimes are positive")
    check(isinstance(tokens.refresh_token, str), "body delivery returns the refresh token in the body")
    check("set-cookie" not in resp.headers, "body delivery sets no cookie")
    assert isinstance(tokens.refresh_token, str)
    return tokens, tokens.refresh_token


def authed(base_url: str, token: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)


def main() -> None:
    base_url = sys.argv[1] if len(sys.argv) > 1 else os.environ["AUTHD_URL"]
    client = Client(base_url=base_url, raise_on_unexpected_status=True)
    email = f"py-{int(time.time() * 1000)}-{random.randrange(10**9)}@example.com"
    password = "correct horse battery staple"

    # register
    reg = register.sync_detailed(client=client, body=RegisterRequest(email=email, password=password))
    check(reg.status_code == 201, f"register: {reg.status_code} {reg.content!r}")
    assert isinstance(reg.parsed, UserCreated)
    check(reg.parsed.email == email, "register echoes the normalised email")
    user_id = reg.parsed.user_id
    again = register.sync_detailed(client=client, body=RegisterRequest(email=email, password=password))
    expect_error(again, 409, "email_taken")

    # login, body delivery
    first, rt1 = do_login(client, email, password)

    # getMe
    me = get_me.sync_detailed(client=authed(base_url, first.access_token))
    check(me.status_code == 200, f"getMe: {me.status_code}")
    assert isinstance(me.parsed, Me)
    check(me.parsed.user_id == user_id and me.parsed.email == email, "getMe: the token's owner")
    check(me.parsed.session_id == first.session_id, "getMe: the login's session")

    # refresh: rotates within the same session
    rot = refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=rt1))
    check(rot.status_code == 200, f"refresh: {rot.status_code} {rot.content!r}")
    second = rot.parsed
    assert isinstance(second, TokenResponse)
    rt2 = second.refresh_token
    check(isinstance(rt2, str) and rt2 != rt1, "refresh rotates")
    assert isinstance(rt2, str)
    check(second.session_id == first.session_id, "refresh keeps the session")
    check(get_me.sync_detailed(client=authed(base_url, second.access_token)).status_code == 200, "the new access token works")

    # reuse of the rotated token: 401, and the whole session is revoked
    expect_error(refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=rt1)), 401, "invalid_refresh_token")
    expect_error(refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=rt2)), 401, "invalid_refresh_token")
    me_after = get_me.sync_detailed(client=authed(base_url, second.access_token))
    expect_error(me_after, 401, "invalid_token")
    check('error="invalid_token"' in me_after.headers.get("www-authenticate", ""), "WWW-Authenticate names invalid_token")

    # the reuse is in the security log of a new session
    third, rt3 = do_login(client, email, password)
    events = list_security_events.sync_detailed(client=authed(base_url, third.access_token))
    check(events.status_code == 200 and isinstance(events.parsed, list), "listSecurityEvents")
    assert isinstance(events.parsed, list)
    check(
        any(e.kind == "refresh_token_reused" and e.session_id == first.session_id for e in events.parsed),
        "a refresh_token_reused event for the revoked session",
    )
    sessions = list_sessions.sync_detailed(client=authed(base_url, third.access_token))
    assert isinstance(sessions.parsed, list)
    check(
        len(sessions.parsed) == 1 and sessions.parsed[0].id == third.session_id and sessions.parsed[0].current,
        "only the new session is live",
    )
    check(not isinstance(sessions.parsed[0].created_at, Unset), "session timestamps parse")

    # logout with the access token: 204 and the cookie expired; the token stops working
    out = logout.sync_detailed(client=authed(base_url, third.access_token), scope=LogoutScope.LOCAL)
    check(out.status_code == 204, f"logout: {out.status_code} {out.content!r}")
    check("Max-Age=0" in out.headers.get("set-cookie", ""), "logout expires the cookie")
    expect_error(get_me.sync_detailed(client=authed(base_url, third.access_token)), 401, "invalid_token")
    expect_error(refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=rt3)), 401, "invalid_refresh_token")

    # logout with a refresh token in the body (of an ended session) is not an error
    again_out = logout.sync_detailed(client=client, body=RefreshRequest(refresh_token=rt3))
    check(again_out.status_code == 204, f"logout of an ended session: {again_out.status_code}")

    print(f"python flow: ok ({STEPS} checks)")


if __name__ == "__main__":
    main()
