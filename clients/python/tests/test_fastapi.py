"""The FastAPI dependency, in a FastAPI app served by its TestClient."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from authd_verify import Verifier
from authd_verify.fastapi import AuthdBearer, authd_claims, install_error_handler

from authd_process import Authd
from conftest import StaleSetup
from refusals import INVALID, refused_after_logout


def app_for(verifier: Verifier, *, cookie: str | None = None, handler: bool = True) -> TestClient:
    app = FastAPI()
    if handler:
        install_error_handler(app)
    authd = AuthdBearer(verifier, cookie=cookie)

    @app.get("/me")
    def me(claims: dict[str, Any] = Depends(authd)) -> dict[str, Any]:
        return {"sub": claims["sub"], "sid": claims["sid"], "email": claims["email"]}

    @app.get("/state")
    async def state(
        request: Request, claims: dict[str, Any] = Depends(authd_claims(verifier))
    ) -> dict[str, Any]:
        return {"same": request.state.auth == claims}

    @app.get("/public")
    def public() -> str:
        return "hello"

    return TestClient(app)


def assert_refused(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == INVALID
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == "invalid_token" and set(body) == {"error", "message"}


def test_the_route_gets_the_claims(authd: Authd, verifier: Verifier) -> None:
    login = authd.user()
    client = app_for(verifier)
    r = client.get("/me", headers={"Authorization": f"Bearer {login.access}"})
    assert r.status_code == 200, r.text
    assert r.json()["sid"] == login.session_id and r.json()["email"] == login.email
    r = client.get("/state", headers={"Authorization": f"bearer {login.access}"})
    assert r.json() == {"same": True}
    assert client.get("/public").status_code == 200


def test_bad_missing_and_ended_tokens_get_401_with_the_challenge(authd: Authd, verifier: Verifier) -> None:
    client = app_for(verifier)
    login = authd.user()
    assert_refused(client.get("/me"))
    assert_refused(client.get("/me", headers={"Authorization": "Bearer garbage"}))
    assert_refused(client.get("/me", headers={"Authorization": f"Basic {login.access}"}))
    assert_refused(client.get("/me", headers={"Authorization": f"Bearer {login.access[:-3]}abc"}))
    refused_after_logout(
        authd,
        login.access,
        lambda: client.get("/me", headers={"Authorization": f"Bearer {login.access}"}),
        "logout_local, through the FastAPI dependency",
    )


def test_without_the_handler_fastapi_still_answers_401_with_the_challenge(verifier: Verifier) -> None:
    r = app_for(verifier, handler=False).get("/me", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == INVALID
    assert "detail" in r.json()


def test_a_stale_verifier_answers_503_not_401(stale: StaleSetup) -> None:
    client = app_for(stale.verifier)
    r = client.get("/me", headers={"Authorization": f"Bearer {stale.live}"})
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1" and "www-authenticate" not in r.headers
    assert r.json()["error"] == "service_unavailable"
    assert_refused(client.get("/me", headers={"Authorization": f"Bearer {stale.ended}"}))


def test_the_cookie_option_reads_the_token_from_a_cookie(authd: Authd, verifier: Verifier) -> None:
    login = authd.user()
    with_cookie = app_for(verifier, cookie="access_token")
    r = with_cookie.get("/me", headers={"Cookie": f"access_token={login.access}"})
    assert r.status_code == 200 and r.json()["sid"] == login.session_id
    other = authd.user()
    both = {"Authorization": f"Bearer {other.access}", "Cookie": f"access_token={login.access}"}
    r = with_cookie.get("/me", headers=both)
    assert r.json()["sid"] == other.session_id, "the bearer header wins"
    assert_refused(app_for(verifier).get("/me", headers={"Cookie": f"access_token={login.access}"}))


def test_the_openapi_document_lists_the_bearer_scheme(verifier: Verifier) -> None:
    spec = app_for(verifier).get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["authd"]["scheme"] == "bearer"
    assert spec["paths"]["/me"]["get"]["security"] == [{"authd": []}]
