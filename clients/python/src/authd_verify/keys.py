"""authd's public keys, from its JWKS: the only keys a token may be verified with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt

from .errors import BadBody, NoKeys

__all__ = ["KeySet", "parse_jwks"]

#: kid -> the Ed25519 public key (a ``cryptography`` key object, as ``PyJWK.key`` gives it).
KeySet = Mapping[str, Any]


def parse_jwks(body: bytes) -> KeySet:
    """The Ed25519 signing keys of a JWKS document, by ``kid``; keys of any other kind or use
    are skipped. A document without one usable key is an error, so that a broken answer never
    empties the key set held."""
    try:
        document = json.loads(body)
    except ValueError as e:
        raise BadBody(f"JWKS: {e}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise BadBody("JWKS: no `keys` array")
    keys = {}
    for jwk in entries:
        usable = _usable(jwk)
        if usable is not None:
            keys[usable[0]] = usable[1]
    if not keys:
        raise NoKeys()
    return MappingProxyType(keys)


def _usable(jwk: Any) -> tuple[str, Any] | None:
    """``(kid, key)`` for an Ed25519 signing key, else ``None``."""
    if not isinstance(jwk, dict):
        return None
    kid, x = jwk.get("kid"), jwk.get("x")
    if (
        jwk.get("kty") != "OKP"
        or jwk.get("crv") != "Ed25519"
        or jwk.get("alg", "EdDSA") != "EdDSA"
        or jwk.get("use", "sig") != "sig"
        or not isinstance(kid, str)
        or not kid
        or not isinstance(x, str)
        # 32 bytes are 43 base64url characters without padding.
        or len(x.rstrip("=")) != 43
    ):
        return None
    try:
        key = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}, algorithm="EdDSA").key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return None
    return kid, key
