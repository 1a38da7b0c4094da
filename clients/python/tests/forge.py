"""Hand-made tokens: signed with keys the tests hold, or not signed at all. Built by hand (not
with PyJWT) so that no library guard stops the forgeries the kit must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def ed25519(header: dict[str, Any], claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{segment(header)}.{segment(claims)}.{signature}"


def header_of(token: str) -> dict[str, Any]:
    return json.loads(unb64(token.split(".")[0]))


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(unb64(token.split(".")[1]))


def authd_like(issuer: str, kid: str, now: int | None = None, **overrides: Any):
    """A header and claims as authd writes them; ``overrides`` replace claims (``None``
    removes one)."""
    now = int(time.time()) if now is None else now
    header = {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": "authd",
        "sub": "8d1c7f57-7d0e-4a2c-9d43-1f2e3a4b5c6d",
        "sid": "0b9e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b",
        "jti": "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d",
        "iat": now,
        "exp": now + 300,
        "email": "forged@example.com",
        "email_verified": False,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return header, claims
