"""The ASGI middleware, in a Starlette app served by its TestClient."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from authd_verify import Verifier
from authd_verify.starlette import AuthdMiddleware

from authd_process import Authd
from conftest import StaleSetup
from refusals import INVALID, assert_refused, refused_after_logout


async def whoami(request: Request) -> JSONResponse:
    auth = request.state.auth
    assert request.auth is auth and request.scope["auth"] is auth
    return JSONResponse({"sid": auth["sid"], "sub": auth["sub"], "email": auth["email"]})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"sid": websocket.scope["auth"]["sid"]})
    await websocket.close()


def app_for(verifier: Verifier, **options: Any) -> TestClient:
    app = Starlette(
        routes=[Route("/whoami", whoami), WebSocketRoute("/ws", echo)],
        middleware=[Middleware(AuthdMiddleware, verifier=verifier, **options)],
    )
    return TestClient(app)


def test_the_handler_gets_the_claims_in_request_state(authd: Authd, verifier: Verifier) -> None:
    login = authd.user()
    r = app_for(verifier).get("/whoami", headers={"Authorization": f"Bearer {login.access}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"sid": login.session_id, "sub": r.json()["sub"], "email": login.email}


def test_bad_missing_and_ended_tokens_get_401_with_the_challenge(authd: Authd, verifier: Verifier) -> None:
    client = app_for(verifier)
    login = authd.user()
    assert_refused(client.get("/whoami"))
    assert_refused(client.get("/whoami", headers={"Authorization": "Bearer "}))
    assert_refused(client.get("/whoami", headers={"Authorization": "Bearer a.b.c"}))
    refused_after_logout(
        authd,
        login.access,
        lambda: client.get("/whoami", headers={"Authorization": f"Bearer {login.access}"}),
        "logout_local, through the Starlette middleware",
    )


def test_a_stale_verifier_answers_503_not_401(stale: StaleSetup) -> None:
    client = app_for(stale.verifier)
    r = client.get("/whoami", headers={"Authorization": f"Bearer {stale.live}"})
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1" and "www-authenticate" not in r.headers
    assert r.json()["error"] == "service_unavailable"
    assert_refused(client.get("/whoami", headers={"Authorization": f"Bearer {stale.ended}"}))


def test_the_cookie_option_reads_the_token_when_there_is_no_bearer_header(
    authd: Authd, verifier: Verifier
) -> None:
    login = authd.user()
    client = app_for(verifier, cookie="at")
    r = client.get("/whoami", headers={"Cookie": f"other=1; at={login.access}"})
    assert r.status_code == 200 and r.json()["sid"] == login.session_id
    assert_refused(client.get("/whoami", headers={"Cookie": "at=garbage"}))
    assert_refused(app_for(verifier).get("/whoami", headers={"Cookie": f"at={login.access}"}))


def test_websocket_handshakes_are_checked_too(authd: Authd, verifier: Verifier) -> None:
    from starlette.testclient import WebSocketDenialResponse

    login = authd.user()
    client = app_for(verifier)
    with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {login.access}"}) as ws:
        assert ws.receive_json() == {"sid": login.session_id}
    with pytest.raises(WebSocketDenialResponse) as caught, client.websocket_connect("/ws"):
        pass
    assert caught.value.status_code == 401
    assert caught.value.headers["www-authenticate"] == INVALID
