"""One ASGI app with two routes (four in FastAPI's), for benches/kits/run.sh, served by uvicorn (one process):

    /bare  verifies the bearer token by hand in the handler: PyJWT's jwt.decode with authd's
           Ed25519 key (from the JWKS, as the kit loads it: jwt.PyJWK(...).key), EdDSA pinned,
           iss, aud, the seven required claims, exp and iat with the kit's 30 s leeway;
    /kit   the kit's adapter, then the same handler.

Both answer 200 {"sub": ...}, or 401.

    KITBENCH_FRAMEWORK=fastapi|starlette AUTHD_URL=http://127.0.0.1:18080 \\
    AUTHD_SERVICE_KEY=authd_sk_... /work/bench-venv/bin/uvicorn --app-dir benches/kits \\
        py_server:app --port 18121 --no-access-log --log-level warning

fastapi: GET /bare and GET /kit (``Depends(AuthdBearer(verifier))``), both ``async def``; and,
measured by ``run.sh fastapi-dep`` only, GET /dep, the bare check as a plain ``async def``
dependency (it separates FastAPI's own cost of a dependency from the kit's, see
benches/PERFORMANCE.md), and GET /mw, guarded by the Starlette middleware ``AuthdMiddleware``
where ``app.add_middleware`` puts it (a pure-ASGI switch, ``_OnlyMw``, sends /mw through it and
every other path past it: one extra ASGI call, which all four routes pay alike).
starlette: the middleware guards all it wraps, so each route is a Mount: GET /bare/ (no
middleware) and GET /kit/ (``Mount(..., middleware=[Middleware(AuthdMiddleware, ...)])``).
The verifier runs on the server's event loop (``async with verifier`` in the lifespan).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import httpx
import jwt

from authd_verify import Verifier

FRAMEWORK = os.environ.get("KITBENCH_FRAMEWORK", "fastapi")
BASE_URL = os.environ["AUTHD_URL"]
ISSUER = os.environ.get("AUTHD_ISSUER", BASE_URL)
AUDIENCE = "authd"
REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]

verifier = Verifier(BASE_URL, os.environ["AUTHD_SERVICE_KEY"], issuer=ISSUER)

_jwks = httpx.get(f"{BASE_URL}/.well-known/jwks.json").json()
_jwk = next(k for k in _jwks["keys"] if k.get("kty") == "OKP" and k.get("crv") == "Ed25519")
KEY = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": _jwk["x"]}, algorithm="EdDSA").key
_OPTIONS: Any = {"require": REQUIRED}


def bare_claims(authorization: str | None) -> dict[str, Any] | None:
    if not authorization or not authorization.startswith("Bearer "):
        return None
    try:
        return jwt.decode(authorization[7:], KEY, algorithms=["EdDSA"], audience=AUDIENCE,
                          issuer=ISSUER, leeway=30, options=_OPTIONS)
    except jwt.InvalidTokenError:
        return None


@contextlib.asynccontextmanager
async def lifespan(_app: Any):
    async with verifier:
        yield


if FRAMEWORK == "fastapi":
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse

    from authd_verify.fastapi import AuthdBearer, install_error_handler
    from authd_verify.starlette import AuthdMiddleware

    class _OnlyMw:
        """AuthdMiddleware for /mw alone, at the place of ``app.add_middleware``."""

        def __init__(self, app: Any) -> None:
            self.app = app
            self.guarded = AuthdMiddleware(app, verifier=verifier)

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope.get("path") == "/mw":
                await self.guarded(scope, receive, send)
            else:
                await self.app(scope, receive, send)

    app = FastAPI(lifespan=lifespan)
    install_error_handler(app)
    app.add_middleware(_OnlyMw)
    authd = AuthdBearer(verifier)

    @app.get("/bare")
    async def bare(request: Request) -> Any:
        claims = bare_claims(request.headers.get("authorization"))
        if claims is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return {"sub": claims["sub"]}

    @app.get("/kit")
    async def kit(claims: dict = Depends(authd)) -> Any:
        return {"sub": claims["sub"]}

    async def bare_dependency(request: Request) -> dict[str, Any]:
        claims = bare_claims(request.headers.get("authorization"))
        if claims is None:
            raise HTTPException(401)
        return claims

    @app.get("/dep")
    async def dep(claims: dict = Depends(bare_dependency)) -> Any:
        return {"sub": claims["sub"]}

    @app.get("/mw")
    async def mw(request: Request) -> Any:
        return {"sub": request.state.auth["sub"]}

elif FRAMEWORK == "starlette":
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from authd_verify.starlette import AuthdMiddleware

    async def bare_route(request: Request) -> JSONResponse:
        claims = bare_claims(request.headers.get("authorization"))
        if claims is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"sub": claims["sub"]})

    async def kit_route(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.state.auth["sub"]})

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Mount("/bare", routes=[Route("/", bare_route)]),
            Mount("/kit", routes=[Route("/", kit_route)],
                  middleware=[Middleware(AuthdMiddleware, verifier=verifier)]),
        ],
    )
else:
    raise SystemExit("KITBENCH_FRAMEWORK: fastapi | starlette")
