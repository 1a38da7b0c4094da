"""The pure parts, without authd: time parsing, the revoked set, the JWKS filter, the token's
place in a request, the refusals and the backoff."""

from __future__ import annotations

import json

import pytest

from authd_verify import BadBody, NoKeys, Revoked, Stale, VerifyError
from authd_verify._http import refusal, token_from
from authd_verify.client import parse_rfc3339
from authd_verify.keys import parse_jwks
from authd_verify.revoked import RevokedSet
from authd_verify.sync import BACKOFF_MAX, BACKOFF_START, Backoff

X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"


def test_expires_at_is_read_as_rfc3339_with_any_offset() -> None:
    assert parse_rfc3339("1970-01-01T00:01:40Z") == 100
    assert parse_rfc3339("1970-01-01T01:01:40+01:00") == 100
    assert parse_rfc3339("1970-01-01T00:01:40.5z") == 100.5
    assert parse_rfc3339("2026-12-02T05:45:30Z") == 1796190330
    for bad in ("yesterday", "2026-12-02", "2026-12-02T05:45:30", "2026-13-02T05:45:30Z", None, 5):
        with pytest.raises(ValueError):
            parse_rfc3339(bad)


def test_the_revoked_set_keeps_the_later_horizon_and_forgets_after_the_leeway() -> None:
    revoked = RevokedSet()
    revoked.insert_all([("s1", 200), ("s1", 100), ("s2", 500)])
    assert len(revoked) == 2
    revoked.purge(now=230, leeway=30)
    assert "s1" in revoked, "kept at exactly horizon + leeway"
    revoked.purge(now=231, leeway=30)
    assert "s1" not in revoked and "s2" in revoked
    fresh = RevokedSet()
    fresh.insert_all([("s3", 900)])
    revoked.replace_with(fresh)
    assert "s2" not in revoked and "s3" in revoked


def test_only_ed25519_signing_keys_are_kept() -> None:
    body = json.dumps(
        {
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "a", "alg": "EdDSA", "use": "sig"},
                {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "no-alg-no-use"},
                {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "enc", "use": "enc"},
                {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "hs", "alg": "HS256"},
                {"kty": "OKP", "crv": "X25519", "x": X, "kid": "x25519"},
                {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
                {"kty": "oct", "k": X, "kid": "oct"},
                {"kty": "OKP", "crv": "Ed25519", "x": "c2hvcnQ", "kid": "short"},
                {"kty": "OKP", "crv": "Ed25519", "x": X},
                "not a key",
            ]
        }
    ).encode()
    assert sorted(parse_jwks(body)) == ["a", "no-alg-no-use"]
    with pytest.raises(NoKeys):
        parse_jwks(b'{"keys": []}')
    with pytest.raises(BadBody):
        parse_jwks(b"<html>")


def test_the_bearer_header_wins_and_the_cookie_is_read_only_when_configured() -> None:
    assert token_from("Bearer abc", ["at=def"], "at") == "abc"
    assert token_from("bearer  abc ", [], None) == "abc"
    assert token_from(None, ["a=1; at=def", "b=2"], "at") == "def"
    assert token_from(None, ['at="def"'], "at") == "def"
    assert token_from(None, ["at=def"], None) is None
    assert token_from("Basic dXNlcg==", ["at=def"], "at") == "def"
    assert token_from("Basic dXNlcg==", [], None) is None
    assert token_from("Bearer ", ["xat=1"], "at") is None


def test_refusals_carry_the_contract_headers_and_body() -> None:
    r = refusal(Revoked())
    assert r.status == 401 and r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert json.loads(r.body_bytes())["error"] == "invalid_token"
    assert refusal(None).status == 401
    r = refusal(Stale())
    assert r.status == 503 and r.headers["Retry-After"] == "1" and "WWW-Authenticate" not in r.headers
    assert r.body["error"] == "service_unavailable"


def test_every_refusal_is_a_verify_error_with_a_status_code_and_reason() -> None:
    import authd_verify

    names = [
        "Malformed",
        "ForbiddenHeader",
        "UnknownKey",
        "Invalid",
        "Expired",
        "NotYetValid",
        "Revoked",
        "Stale",
    ]
    reasons = set()
    for name in names:
        error = getattr(authd_verify, name)()
        assert isinstance(error, VerifyError)
        assert (error.status, error.code) == (
            (503, "service_unavailable") if name == "Stale" else (401, "invalid_token")
        )
        reasons.add(error.reason)
    assert len(reasons) == len(names)


def test_backoff_doubles_from_100_ms_to_at_most_5_s_and_resets() -> None:
    backoff = Backoff()
    delays = [backoff.next() for _ in range(10)]
    assert BACKOFF_START / 2 <= delays[0] <= BACKOFF_START
    assert 0.4 <= delays[3] <= 0.8
    assert all(d <= BACKOFF_MAX for d in delays) and delays[9] >= BACKOFF_MAX / 2
    backoff.reset()
    assert backoff.next() <= BACKOFF_START
