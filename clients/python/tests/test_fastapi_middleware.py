"""The Starlette middleware on a FastAPI app (``app.add_middleware(AuthdMiddleware, ...)``), served
by its TestClient: the cheapest path the README gives FastAPI users."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from authd_verify import Verifier
from authd_verify.starlette import AuthdMiddleware

from authd_process import Authd
from conftest import StaleSetup
from refusals import assert_refused, refused_after_logout


def app_for(verifier: Verifier, **options: Any) -> TestClient:
    app = FastAPI()
    app.add_middleware(AuthdMiddleware, verifier=verifier, **options)

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        auth = request.state.auth
        assert request.auth is auth and request.scope["auth"] is auth
        return {"sub": auth["sub"], "sid": auth["sid"], "email": auth["email"]}

    @app.get("/sync")
    def sync(request: Request) -> dict[str, Any]:
        # A plain `def` route runs in a worker thread; the claims are there too.
        return {"sid": request.state.auth["sid"]}

    return TestClient(app)


def test_the_route_gets_the_claims(authd: Authd, verifier: Verifier) -> None:
    login = authd.user()
    client = app_for(verifier)
    r = client.get("/me", headers={"Authorization": f"Bearer {login.access}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"sub": r.json()["sub"], "sid": login.session_id, "email": login.email}
    r = client.get("/sync", headers={"Authorization": f"bearer {login.access}"})
    assert r.status_code == 200 and r.json() == {"sid": login.session_id}


def test_missing_garbage_and_ended_tokens_get_401_with_the_kits_body(
    authd: Authd, verifier: Verifier
) -> None:
    client = app_for(verifier)
    login = authd.user()
    assert_refused(client.get("/me"))
    assert_refused(client.get("/me", headers={"Authorization": "Bearer garbage"}))
    assert_refused(client.get("/me", headers={"Authorization": "Bearer a.b.c"}))
    assert_refused(client.get("/me", headers={"Authorization": f"Basic {login.access}"}))
    assert_refused(client.get("/me", headers={"Authorization": f"Bearer {login.access[:-3]}abc"}))
    assert_refused(client.get("/nowhere"))
    refused_after_logout(
        authd,
        login.access,
        lambda: client.get("/me", headers={"Authorization": f"Bearer {login.access}"}),
        "logout_local, through the middleware on FastAPI",
    )


def test_the_cookie_option_works_on_fastapi_too(authd: Authd, verifier: Verifier) -> None:
    login = authd.user()
    r = app_for(verifier, cookie="at").get("/me", headers={"Cookie": f"other=1; at={login.access}"})
    assert r.status_code == 200 and r.json()["sid"] == login.session_id
    assert_refused(app_for(verifier).get("/me", headers={"Cookie": f"at={login.access}"}))


def test_a_stale_verifier_answers_503_not_401(stale: StaleSetup) -> None:
    client = app_for(stale.verifier)
    r = client.get("/me", headers={"Authorization": f"Bearer {stale.live}"})
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1" and "www-authenticate" not in r.headers
    assert r.json()["error"] == "service_unavailable"
    assert_refused(client.get("/me", headers={"Authorization": f"Bearer {stale.ended}"}))
