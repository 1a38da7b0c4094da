"""What the framework adapters share: where the token is read from, and the answer to a
refused request."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import Stale, VerifyError

__all__ = ["Refusal", "refusal", "token_from"]

_UNAUTHORIZED = "The access token is missing, invalid or expired."
_UNAVAILABLE = "The service is temporarily unavailable; retry shortly."


def token_from(authorization: str | None, cookie_headers: Iterable[str], cookie: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or else (when ``cookie`` names one) of
    that cookie."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            token = token.strip()
            if token:
                return token
    if cookie is None:
        return None
    for header in cookie_headers:
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name == cookie:
                value = value.strip().strip('"')
                return value or None
    return None


@dataclass(frozen=True)
class Refusal:
    """The answer to a refused request: status, headers and a JSON body."""

    status: int
    headers: dict[str, str]
    body: dict[str, str]

    def body_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


def refusal(error: VerifyError | None) -> Refusal:
    """401 ``invalid_token`` with ``WWW-Authenticate: Bearer error="invalid_token"`` for a
    missing or refused token (``error`` is ``None`` when there was no token); 503
    ``service_unavailable`` with ``Retry-After: 1`` for a stale verifier. The body never says
    which check failed."""
    if isinstance(error, Stale):
        return Refusal(
            503,
            {"Retry-After": "1", "Cache-Control": "no-store"},
            {"error": "service_unavailable", "message": _UNAVAILABLE},
        )
    return Refusal(
        401,
        {"WWW-Authenticate": 'Bearer error="invalid_token"', "Cache-Control": "no-store"},
        {"error": "invalid_token", "message": _UNAUTHORIZED},
    )
