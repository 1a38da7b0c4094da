"""The claims, checked with tokens signed by authd's own key: an authd started with a key file
the tests hold, so that only the claim under test is wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authd_verify import Expired, Invalid, NotYetValid, Revoked, Verifier

from authd_process import Authd
from forge import authd_like, claims_of, ed25519, header_of


@pytest.fixture(scope="module")
def keyed(binary: Path, tmp_path_factory: pytest.TempPathFactory):
    """An authd signing with a key file, the key, its kid, and a verifier following it."""
    workdir = tmp_path_factory.mktemp("keyed")
    key = Ed25519PrivateKey.generate()
    (workdir / "signing.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    authd = Authd(binary, workdir, {"AUTHD_KEY_FILE": str(workdir / "signing.pem")}).start()
    verifier = Verifier(authd.url, authd.service_key()).start()
    try:
        (kid,) = authd.jwks_kids()
        yield authd, key, kid, verifier
    finally:
        verifier.close()
        authd.close()


def test_authds_own_tokens_match_what_the_tests_sign(keyed) -> None:
    authd, key, kid, verifier = keyed
    login = authd.user()
    assert header_of(login.access) == {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}
    header, claims = authd_like(authd.url, kid)
    assert set(claims) == set(claims_of(login.access))
    assert verifier.verify(ed25519(header, claims, key))["email"] == "forged@example.com"
    extra = verifier.verify(ed25519(header, {**claims, "amr": ["pwd"], "app_metadata": {"plan": "pro"}}, key))
    assert extra["amr"] == ["pwd"] and extra["app_metadata"] == {"plan": "pro"}


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"iss": None}, Invalid),
        ({"aud": None}, Invalid),
        ({"sub": None}, Invalid),
        ({"sid": None}, Invalid),
        ({"jti": None}, Invalid),
        ({"iat": None}, Invalid),
        ({"exp": None}, Invalid),
        ({"aud": ["authd"]}, Invalid),
        ({"aud": ["authd", "other"]}, Invalid),
        ({"aud": "other"}, Invalid),
        ({"iss": "https://elsewhere.example"}, Invalid),
        ({"sid": 42}, Invalid),
        ({"sub": {"id": 1}}, Invalid),
        ({"exp": "9999999999"}, Invalid),
        ({"exp": 1e12}, Invalid),
        ({"iat": True}, Invalid),
        ({"email": 7}, Invalid),
        ({"exp": 1000, "iat": 2000}, Expired),
        ({"iat": 4_000_000_000, "exp": 4_000_000_300}, NotYetValid),
    ],
)
def test_a_token_with_a_wrong_claim_is_refused(keyed, overrides, expected) -> None:
    authd, key, kid, verifier = keyed
    header, claims = authd_like(authd.url, kid, **overrides)
    with pytest.raises(expected) as caught:
        verifier.verify(ed25519(header, claims, key))
    assert type(caught.value) is expected


def test_exp_before_iat_is_invalid(keyed) -> None:
    authd, key, kid, verifier = keyed
    header, claims = authd_like(authd.url, kid)
    claims["exp"] = claims["iat"] - 1
    with pytest.raises(Invalid):
        verifier.verify(ed25519(header, claims, key))


def test_a_forged_token_for_an_ended_session_is_refused(keyed) -> None:
    authd, key, kid, verifier = keyed
    login = authd.user()
    authd.logout(login.access)
    header, claims = authd_like(authd.url, kid, sid=login.session_id)
    token = ed25519(header, claims, key)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            verifier.verify(token)
        except Revoked:
            return
        time.sleep(0.005)
    pytest.fail("a fresh token of an ended session still verifies")
