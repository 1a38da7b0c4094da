"""A Starlette (and FastAPI) middleware: ``app.add_middleware(AuthdMiddleware, verifier=v)``.

Every HTTP request and WebSocket handshake must carry a valid access token; its claims are put in
``request.state.auth`` and ``scope["auth"]`` (so ``request.auth`` works too). Others are answered
by the middleware itself: 401 ``invalid_token`` or, with a stale verifier, 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._http import refusal, token_from
from .errors import VerifyError
from .verifier import Verifier

__all__ = ["AuthdMiddleware"]

log = logging.getLogger("authd_verify")

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


class AuthdMiddleware:
    """A pure ASGI middleware (no ``BaseHTTPMiddleware``: no extra task per request).

    :param app: the wrapped ASGI app (Starlette passes it).
    :param verifier: a started :class:`~authd_verify.Verifier`.
    :param cookie: the name of a cookie to read the token from when there is no
        ``Authorization: Bearer`` header; default: none (bearer only).
    """

    def __init__(self, app: ASGIApp, verifier: Verifier, cookie: str | None = None) -> None:
        self.app = app
        self.verifier = verifier
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization, cookies = _headers(scope, self.cookie is not None)
        token = token_from(authorization, cookies, self.cookie)
        error: VerifyError | None = None
        if token is None:
            log.debug("request refused: no access token")
        else:
            try:
                claims = self.verifier.verify(token)
            except VerifyError as e:
                log.debug("request refused: %s", e.reason)
                error = e
            else:
                scope["auth"] = claims
                scope.setdefault("state", {})["auth"] = claims
                await self.app(scope, receive, send)
                return
        await _refuse(scope, send, error)


def _headers(scope: Scope, with_cookies: bool) -> tuple[str | None, list[str]]:
    """The first ``Authorization`` header, and the ``Cookie`` headers when ``with_cookies``
    (else none: the scan stops at the ``Authorization`` header)."""
    authorization: str | None = None
    cookies: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
                if not with_cookies:
                    break
        elif with_cookies and name == b"cookie":
            cookies.append(value.decode("latin-1"))
    return authorization, cookies


async def _refuse(scope: Scope, send: Callable[..., Any], error: VerifyError | None) -> None:
    answer = refusal(error)
    body = answer.body_bytes()
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
    headers += [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            # 1008: policy violation; 1013: try again later.
            await send({"type": "websocket.close", "code": 1013 if answer.status == 503 else 1008})
        return
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
