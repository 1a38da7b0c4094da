"""The SDK flow in Python, on a client generated from openapi.yaml by openapi-python-client:
register, login (body delivery), getMe, refresh, reuse of the old refresh token (401, the
session is revoked: its new refresh token and its access token fail too), logout. Then the
admin API with the service key of scope `admin` in AUTHD_ADMIN_KEY (made by run.sh): create a
user, set its app_metadata (the next refresh's access token carries it), delete it (404 after).
And a password reset: requestPasswordReset (202), the token from the mail authd wrote to
AUTHD_MAIL_DIR (run.sh starts it without SMTP), resetPassword (204), the old session's access
token refused, the new password logs in, the spent token refused (400 invalid_email_token).

Usage: PYTHONPATH=target/sdk-py python tests/sdk/flow.py http://127.0.0.1:PORT
(the server runs with AUTHD_REUSE_GRACE_SECS=0, so a replay is reuse at once).
"""

import base64
import json
import os
import random
import re
import sys
import time
from pathlib import Path

from authd_client import AuthenticatedClient, Client
from authd_client.api.admin import admin_create_user, admin_delete_user, admin_get_user, admin_update_user
from authd_client.api.auth import login, logout, refresh, register, request_password_reset, reset_password
from authd_client.api.me import get_me
from authd_client.api.sessions import list_security_events, list_sessions
from authd_client.models import (
    AdminUser,
    CreateUserRequest,
    Delivery,
    ErrorBody,
    ForgotRequest,
    LoginRequest,
    LogoutScope,
    Me,
    RefreshRequest,
    RegisterRequest,
    ResetRequest,
    TokenResponse,
    UpdateUserRequest,
    UpdateUserRequestAppMetadataType0,
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


def jwt_claims(token: str) -> dict:
    """The claims of a JWT (its middle part, base64url-decoded); the signature is not checked here."""
    parts = token.split(".")
    check(len(parts) == 3, "the access token is a JWT (three parts)")
    return json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))


def reset_token_from_mail(email: str) -> str:
    """The token of the newest password-reset mail to `email` in AUTHD_MAIL_DIR (`.eml` files,
    quoted-printable bodies), polling for up to 10 s: authd mails after answering."""
    mail_dir = os.environ.get("AUTHD_MAIL_DIR", "")
    check(mail_dir != "", "AUTHD_MAIL_DIR names authd's mail directory (run.sh sets it)")
    to = re.compile(r"^To: .*" + re.escape(email), re.M | re.I)
    link = re.compile(r"#action=reset-password&token=([A-Za-z0-9_-]{43})")
    deadline = time.monotonic() + 10
    while True:
        files = sorted(
            (p for p in Path(mail_dir).glob("*.eml") if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime_ns,
            reverse=True,
        )
        for path in files:
            # Quoted-printable: soft line breaks and `=3D` (the token itself is base64url).
            text = path.read_text("latin-1").replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
            found = link.search(text)
            if to.search(text) and found:
                return found.group(1)
        if time.monotonic() > deadline:
            raise AssertionError(f"no password-reset mail to {email} in {mail_dir} within 10 s")
        time.sleep(0.1)


def reset_scenario(base_url: str, client: Client) -> None:
    email = f"py-reset-{int(time.time() * 1000)}-{random.randrange(10**9)}@example.com"
    password = "correct horse battery staple"
    new_password = "a longer and newer passphrase"
    reg = register.sync_detailed(client=client, body=RegisterRequest(email=email, password=password))
    check(reg.status_code == 201, f"register: {reg.status_code} {reg.content!r}")
    before, rt_before = do_login(client, email, password)

    # requestPasswordReset: 202, no body, whatever the address
    forgot = request_password_reset.sync_detailed(client=client, body=ForgotRequest(email=email))
    check(forgot.status_code == 202, f"requestPasswordReset: {forgot.status_code} {forgot.content!r}")
    check(forgot.content == b"", "requestPasswordReset: no body")
    unknown = request_password_reset.sync_detailed(client=client, body=ForgotRequest(email=f"nobody-{email}"))
    check(unknown.status_code == 202, f"requestPasswordReset of an unknown address: {unknown.status_code}")
    token = reset_token_from_mail(email)

    # resetPassword: 204; every session ends at once
    reset = reset_password.sync_detailed(client=client, body=ResetRequest(token=token, new_password=new_password))
    check(reset.status_code == 204, f"resetPassword: {reset.status_code} {reset.content!r}")
    expect_error(get_me.sync_detailed(client=authed(base_url, before.access_token)), 401, "invalid_token")
    expect_error(
        refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=rt_before)), 401, "invalid_refresh_token"
    )

    # the old password is refused, the new one logs in
    old_login = login.sync_detailed(
        client=client, body=LoginRequest(email=email, password=password, delivery=Delivery.BODY)
    )
    expect_error(old_login, 401, "invalid_credentials")
    after, _ = do_login(client, email, new_password)
    me = get_me.sync_detailed(client=authed(base_url, after.access_token))
    check(me.status_code == 200 and isinstance(me.parsed, Me) and me.parsed.email == email, f"getMe after the reset: {me.status_code}")

    # the token is spent
    again = reset_password.sync_detailed(
        client=client, body=ResetRequest(token=token, new_password="yet another long passphrase")
    )
    expect_error(again, 400, "invalid_email_token")


def admin_scenario(base_url: str, client: Client) -> None:
    admin_key = os.environ.get("AUTHD_ADMIN_KEY", "")
    check(admin_key.startswith("authd_sk_"), "run.sh made an admin key (AUTHD_ADMIN_KEY)")
    admin = authed(base_url, admin_key)
    email = f"py-admin-{int(time.time() * 1000)}-{random.randrange(10**9)}@example.com"
    password = "correct horse battery staple"

    # adminCreateUser with a password: 201, the user can log in at once
    created = admin_create_user.sync_detailed(client=admin, body=CreateUserRequest(email=email, password=password))
    check(created.status_code == 201, f"adminCreateUser: {created.status_code} {created.content!r}")
    assert isinstance(created.parsed, AdminUser)
    check(created.parsed.email == email and not created.parsed.disabled, "adminCreateUser: the new user")
    user_id = created.parsed.id
    tokens, rt = do_login(client, email, password)
    check("app_metadata" not in jwt_claims(tokens.access_token), "no app_metadata claim before an admin sets it")

    # adminUpdateUser: app_metadata, carried by the access token of the next refresh
    metadata = UpdateUserRequestAppMetadataType0.from_dict({"roles": ["support"]})
    patched = admin_update_user.sync_detailed(user_id, client=admin, body=UpdateUserRequest(app_metadata=metadata))
    check(patched.status_code == 200, f"adminUpdateUser: {patched.status_code} {patched.content!r}")
    assert isinstance(patched.parsed, AdminUser)
    check(json.loads(patched.content)["app_metadata"] == {"roles": ["support"]}, "adminUpdateUser echoes app_metadata")
    rot = refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=rt))
    check(rot.status_code == 200, f"refresh after adminUpdateUser: {rot.status_code} {rot.content!r}")
    assert isinstance(rot.parsed, TokenResponse)
    claims = jwt_claims(rot.parsed.access_token)
    check(claims.get("sub") == user_id, "the refreshed token is the user's")
    check(
        claims.get("app_metadata") == {"roles": ["support"]},
        f"the refreshed access token carries app_metadata.roles == ['support']: {claims.get('app_metadata')!r}",
    )

    # adminDeleteUser: 204, then 404
    deleted = admin_delete_user.sync_detailed(user_id, client=admin)
    check(deleted.status_code == 204, f"adminDeleteUser: {deleted.status_code} {deleted.content!r}")
    expect_error(admin_get_user.sync_detailed(user_id, client=admin), 404, "not_found")
    expect_error(get_me.sync_detailed(client=authed(base_url, rot.parsed.access_token)), 401, "invalid_token")


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

    reset_scenario(base_url, client)
    admin_scenario(base_url, client)

    print(f"python flow: ok ({STEPS} checks)")


if __name__ == "__main__":
    main()
