"""The core verifier against a live authd: what verifies, what is refused and as what, and that
verifying makes no request."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authd_verify import (
    MAX_TOKEN_LEN,
    Expired,
    ForbiddenHeader,
    InsufficientScope,
    Invalid,
    InvalidServiceKey,
    Malformed,
    NotYetValid,
    Stale,
    StartError,
    UnknownKey,
    Unreachable,
    Verifier,
    VerifyError,
)

from authd_process import Authd, Login, free_port, until
from conftest import FakeClock
from forge import authd_like, claims_of, ed25519, header_of, hs256, unb64, unsigned
from timing import DEADLINE, record


def test_a_valid_token_verifies_and_hands_over_every_claim(authd: Authd, verifier: Verifier) -> None:
    login = authd.user()
    claims = verifier.verify(login.access)
    assert claims["sid"] == login.session_id
    assert claims["email"] == login.email
    assert claims["iss"] == authd.url and claims["aud"] == "authd"
    assert isinstance(claims["sub"], str) and isinstance(claims["jti"], str)
    assert claims["exp"] - claims["iat"] == 300
    assert claims == claims_of(login.access), "every claim, as sent"
    assert verifier.verify(login.access.encode()) == claims, "bytes work too"


def test_status_reports_a_ready_verifier(verifier: Verifier) -> None:
    status = verifier.status()
    assert status.ready and status.keys == 1 and status.last_error is None
    assert status.last_sync is not None and status.staleness is not None and status.staleness < 30
    assert status.requests >= 2


def test_verifying_makes_no_request_to_authd(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier]
) -> None:
    verifier = make_verifier(authd, service_key)
    login = authd.user()
    # The JWKS, the snapshot's page and the long-poll now held (25 s).
    until("the long-poll is open", lambda: verifier.status().requests == 3, 5)
    before = verifier.status().requests
    started = time.perf_counter()
    for _ in range(1000):
        verifier.verify(login.access)
    took = time.perf_counter() - started
    print(f"1000 verifications in {took * 1000:.0f} ms")
    assert verifier.status().requests == before
    # Garbage and refusals cost nothing either.
    for _ in range(100):
        with pytest.raises(VerifyError):
            verifier.verify(login.access[:-2] + "xx")
    assert verifier.status().requests == before


def test_the_repr_hides_the_service_key(verifier: Verifier, service_key: str) -> None:
    assert service_key not in repr(verifier)
    assert service_key not in str(vars(verifier))
    assert "<redacted>" in repr(verifier)


def test_tokens_not_signed_by_authd_are_refused(authd: Authd, verifier: Verifier) -> None:
    login = authd.user()
    real_header, real_claims = header_of(login.access), claims_of(login.access)
    jwk = authd.http.get("/.well-known/jwks.json").json()["keys"][0]
    x = jwk["x"]
    mine = Ed25519PrivateKey.generate()
    public_pem = mine.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs = {**real_header, "alg": "HS256"}
    cases = {
        "alg none, no signature": (unsigned({**real_header, "alg": "none"}, real_claims), Malformed),
        "alg none, any signature": (
            unsigned({**real_header, "alg": "none"}, real_claims, "e30"),
            ForbiddenHeader,
        ),
        "HS256 keyed with the JWKS x": (hs256(hs, real_claims, x.encode()), ForbiddenHeader),
        "HS256 keyed with the raw public key": (hs256(hs, real_claims, unb64(x)), ForbiddenHeader),
        "HS256 keyed with a PEM public key": (hs256(hs, real_claims, public_pem), ForbiddenHeader),
        "my key, authd's kid": (ed25519(real_header, real_claims, mine), Invalid),
        "my key, unknown kid": (ed25519({**real_header, "kid": "mine"}, real_claims, mine), UnknownKey),
        "my key, no kid": (ed25519({"alg": "EdDSA", "typ": "at+jwt"}, real_claims, mine), UnknownKey),
        "wrong typ": (ed25519({**real_header, "typ": "JWT"}, real_claims, mine), ForbiddenHeader),
        "no typ": (ed25519({"alg": "EdDSA", "kid": real_header["kid"]}, real_claims, mine), ForbiddenHeader),
        "my key embedded (jwk)": (
            ed25519({**real_header, "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}}, real_claims, mine),
            ForbiddenHeader,
        ),
        "tampered claims": (
            ".".join(
                [
                    login.access.split(".")[0],
                    unsigned({}, {**real_claims, "sub": "admin"}).split(".")[1],
                    login.access.split(".")[2],
                ]
            ),
            Invalid,
        ),
        "garbage": ("garbage", Malformed),
        "empty": ("", Malformed),
        "two segments": (".".join(login.access.split(".")[:2]), Malformed),
        "not base64": ("a!b.c.d", Malformed),
        "header not JSON": ("bm90IGpzb24.e30.c2ln", Malformed),
        "header not an object": (unsigned([1], real_claims, "c2ln"), Malformed),
        "too long": (login.access + "A" * (MAX_TOKEN_LEN + 1 - len(login.access)), Malformed),
        "non-ASCII": (login.access[:-1] + "é", Malformed),
    }
    for name in ("jku", "x5u", "x5c", "crit", "enc", "zip", "b64"):
        cases[f"header {name}"] = (ed25519({**real_header, name: ["x"]}, real_claims, mine), ForbiddenHeader)
    for what, (token, expected) in cases.items():
        with pytest.raises(expected) as caught:
            verifier.verify(token)
        assert type(caught.value) is expected, what
        assert caught.value.status == 401 and caught.value.code == "invalid_token", what
    assert verifier.verify(login.access)["sid"] == login.session_id


def test_the_clock_decides_expiry_with_the_leeway(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier], clock: FakeClock
) -> None:
    verifier = make_verifier(authd, service_key, clock=clock, leeway=30)
    login = authd.user()
    claims = verifier.verify(login.access)
    clock.advance(claims["exp"] + 30 - time.time() - 1)
    verifier.verify(login.access)
    clock.advance(2)
    with pytest.raises(Expired):
        verifier.verify(login.access)
    clock.offset = claims["iat"] - 30 - time.time() + 0.5
    verifier.verify(login.access)
    clock.offset = claims["iat"] - 30 - time.time() - 2
    with pytest.raises(NotYetValid):
        verifier.verify(login.access)


def test_another_issuer_or_audience_is_refused(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier]
) -> None:
    login = authd.user()
    with pytest.raises(Invalid):
        make_verifier(authd, service_key, issuer="https://elsewhere.example").verify(login.access)
    with pytest.raises(Invalid):
        make_verifier(authd, service_key, audience="orders").verify(login.access)
    trailing = Verifier(authd.url + "/", service_key).start()
    try:
        assert trailing.verify(login.access)["iss"] == authd.url, "the issuer drops the slash"
    finally:
        trailing.close()


def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_interval(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier], clock: FakeClock
) -> None:
    verifier = make_verifier(authd, service_key, clock=clock, jwks_refetch_interval=10)
    until("the long-poll is open", lambda: verifier.status().requests == 3, 5)
    header, claims = authd_like(authd.url, "not-a-kid-of-authd")
    token = ed25519(header, claims, Ed25519PrivateKey.generate())
    for _ in range(100):
        with pytest.raises(UnknownKey):
            verifier.verify(token)
    until("one JWKS refetch", lambda: verifier.status().requests == 4, 5)
    time.sleep(0.2)
    assert verifier.status().requests == 4, "one refetch for 100 unknown kids"
    clock.advance(10.5)
    with pytest.raises(UnknownKey):
        verifier.verify(token)
    until("a second refetch after the interval", lambda: verifier.status().requests == 5, 5)
    assert verifier.status().keys == 1


def test_a_rotated_key_verifies_once_the_kit_has_refetched_the_jwks(
    spawn_authd: Callable[..., Authd], make_verifier: Callable[..., Verifier]
) -> None:
    authd = spawn_authd()
    key = authd.service_key()
    verifier = make_verifier(authd, key)
    old = authd.user()
    old_kid = header_of(old.access)["kid"]
    authd.cli("keys", "rotate", "--activate-in", "0")

    def signed_with_the_new_key() -> Login | None:
        login = authd.login(old.email)
        return login if header_of(login.access)["kid"] != old_kid else None

    fresh = until("authd signs with the new key", signed_with_the_new_key)
    with pytest.raises(UnknownKey):
        verifier.verify(fresh.access)
    until("the new kid verifies", lambda: _verifies(verifier, fresh.access), 5)
    assert verifier.status().keys == 2
    assert verifier.verify(old.access)["sid"] == old.session_id, "the old key stays until its tokens expire"


def _verifies(verifier: Verifier, token: str) -> bool:
    try:
        verifier.verify(token)
        return True
    except UnknownKey:
        return False


def test_start_fails_with_a_typed_error(authd: Authd) -> None:
    with pytest.raises(StartError) as caught:
        Verifier(authd.url, "authd_sk_" + "A" * 43).start()
    assert caught.value.stage == "snapshot" and isinstance(caught.value.cause, InvalidServiceKey)
    scoped = authd.service_key("introspector", "introspect")
    with pytest.raises(StartError) as caught:
        Verifier(authd.url, scoped).start()
    assert isinstance(caught.value.cause, InsufficientScope)
    with pytest.raises(StartError) as caught:
        Verifier(f"http://127.0.0.1:{free_port()}", scoped).start()
    assert caught.value.stage == "jwks" and isinstance(caught.value.cause, Unreachable)
    assert scoped not in str(caught.value)


def test_settings_are_checked_and_a_verifier_answers_only_while_running(
    authd: Authd, service_key: str
) -> None:
    for bad in (
        lambda: Verifier("ftp://example.com", service_key),
        lambda: Verifier(authd.url, ""),
        lambda: Verifier(authd.url, "authd_sk_with space"),
        lambda: Verifier(authd.url, service_key, max_staleness=1),
    ):
        with pytest.raises(ValueError) as caught:
            bad()
        assert service_key not in str(caught.value)
    login = authd.user()
    verifier = Verifier(authd.url, service_key)
    assert not verifier.status().ready
    with pytest.raises(Stale):
        verifier.verify(login.access)
    with verifier:
        assert verifier.verify(login.access)["sid"] == login.session_id
        with pytest.raises(RuntimeError):
            verifier.start()
    started = time.monotonic()
    verifier.close()
    assert time.monotonic() - started < 1, "close does not wait for the held poll"
    assert not verifier.status().ready
    with pytest.raises(Stale) as caught:
        verifier.verify(login.access)
    assert caught.value.status == 503 and caught.value.code == "service_unavailable"


def test_the_asyncio_variant_follows_the_feed_too(authd: Authd, service_key: str) -> None:
    import asyncio

    async def main() -> None:
        async with Verifier(authd.url, service_key) as verifier:
            login = await asyncio.to_thread(authd.user)
            verifier.verify(login.access)
            started = time.monotonic()
            await asyncio.to_thread(authd.logout, login.access)
            answered = time.monotonic()
            while True:
                try:
                    verifier.verify(login.access)
                except VerifyError as e:
                    assert e.reason == "revoked"
                    record("logout_local, asyncio verifier (astart)", started, answered)
                    return
                assert time.monotonic() - answered < DEADLINE, "still accepted"
                await asyncio.sleep(0.002)

    asyncio.run(main())


def test_threads_verify_while_the_loop_writes_the_set(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier]
) -> None:
    import threading

    verifier = make_verifier(authd, service_key)
    live = authd.user()
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        try:
            while not stop.is_set():
                assert verifier.verify(live.access)["sid"] == live.session_id
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    ended = [authd.login(live.email) for _ in range(5)]
    for login in ended:
        authd.logout(login.access)
    until("every logout arrives", lambda: all(_revoked(verifier, t.access) for t in ended), 5)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []


def _revoked(verifier: Verifier, token: str) -> bool:
    try:
        verifier.verify(token)
        return False
    except VerifyError as e:
        return e.reason == "revoked"
