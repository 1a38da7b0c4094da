"""A FastAPI dependency that hands the route the token's claims::

    authd = AuthdBearer(verifier)
    install_error_handler(app)   # the contract's error body (see below)

    @app.get("/me")
    def me(claims: dict = Depends(authd)): ...

A refused request raises :class:`AuthdHTTPException` (a FastAPI ``HTTPException``): 401 with
``WWW-Authenticate: Bearer error="invalid_token"``, or 503 with ``Retry-After: 1`` for a stale
verifier. FastAPI's default handler writes ``{"detail": ...}``; :func:`install_error_handler`
makes the body authd's ``{"error": ..., "message": ...}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.responses import JSONResponse, Response

from ._http import refusal, token_from
from .errors import VerifyError
from .verifier import Verifier

__all__ = ["AuthdBearer", "AuthdHTTPException", "authd_claims", "install_error_handler"]

log = logging.getLogger("authd_verify")


class AuthdHTTPException(HTTPException):
    """A refused request: ``status_code`` 401 or 503, the contract's headers, and in ``error``
    the :class:`~authd_verify.VerifyError` (``None`` when there was no token)."""

    def __init__(self, error: VerifyError | None) -> None:
        answer = refusal(error)
        super().__init__(answer.status, detail=answer.body["message"], headers=answer.headers)
        self.error = error
        self.body = answer.body


class AuthdBearer(SecurityBase):
    """A dependency returning the claims of the request's access token (a ``dict``).

    It is a FastAPI security scheme, so the OpenAPI document lists bearer authentication.

    :param verifier: a started :class:`~authd_verify.Verifier`.
    :param cookie: the name of a cookie to read the token from when there is no
        ``Authorization: Bearer`` header; default: none (bearer only).
    :param scheme_name: the security scheme's name in the OpenAPI document.
    """

    def __init__(self, verifier: Verifier, *, cookie: str | None = None, scheme_name: str = "authd") -> None:
        self.verifier = verifier
        self.cookie = cookie
        self.model = HTTPBearerModel(bearerFormat="JWT", description="An access token issued by authd.")
        self.scheme_name = scheme_name

    async def __call__(self, request: Request) -> dict[str, Any]:
        headers = request.headers
        cookie = self.cookie
        # The cookie headers are read only when a cookie is configured.
        cookies = () if cookie is None else headers.getlist("cookie")
        token = token_from(headers.get("authorization"), cookies, cookie)
        if token is None:
            log.debug("request refused: no access token")
            raise AuthdHTTPException(None)
        try:
            claims = self.verifier.verify(token)
        except VerifyError as e:
            log.debug("request refused: %s", e.reason)
            raise AuthdHTTPException(e) from None
        # What `request.state.auth = claims` does, without building a State object: a request's
        # State stores its attributes in this very dict.
        request.scope.setdefault("state", {})["auth"] = claims
        return claims


def authd_claims(verifier: Verifier, *, cookie: str | None = None, scheme_name: str = "authd") -> AuthdBearer:
    """The dependency of :class:`AuthdBearer`: ``claims: dict = Depends(authd_claims(v))``."""
    return AuthdBearer(verifier, cookie=cookie, scheme_name=scheme_name)


async def _handle(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, AuthdHTTPException):
        raise exc
    return JSONResponse(
        exc.body,
        status_code=exc.status_code,
        headers=exc.headers,
        media_type="application/json; charset=utf-8",
    )


def install_error_handler(app: FastAPI) -> None:
    """Makes refusals answer authd's error body ``{"error", "message"}`` (with the same
    status and headers) instead of FastAPI's ``{"detail"}``."""
    app.add_exception_handler(AuthdHTTPException, _handle)
