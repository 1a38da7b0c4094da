"""Every way a session ends reaches the kit through the live feed, within a second."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from authd_verify import Revoked, Verifier
from authd_verify.client import parse_rfc3339

from authd_process import PASSWORD, Authd, email, until
from conftest import FakeClock
from timing import refused_within

ENDINGS = [
    "logout_local",
    "logout_others",
    "logout_global",
    "delete_session",
    "refresh_token_reuse",
    "password_change",
    "cli_sessions_revoke",
    "cli_users_disable",
]


def end(authd: Authd, ending: str, keeper, victim) -> None:
    if ending == "logout_local":
        authd.logout(victim.access, "local")
    elif ending == "logout_others":
        authd.logout(keeper.access, "others")
    elif ending == "logout_global":
        authd.logout(keeper.access, "global")
    elif ending == "delete_session":
        authd.delete_session(keeper.access, victim.session_id)
    elif ending == "refresh_token_reuse":
        assert authd.refresh(victim.refresh).status_code == 200
        reused = authd.refresh(victim.refresh)
        assert reused.status_code == 401 and reused.json()["error"] == "invalid_refresh_token"
    elif ending == "password_change":
        authd.change_password(keeper.access, PASSWORD, "another horse battery")
    elif ending == "cli_sessions_revoke":
        authd.cli("sessions", "revoke", "--user", victim.email)
    elif ending == "cli_users_disable":
        authd.cli("users", "disable", victim.email)
    else:
        raise AssertionError(ending)


@pytest.fixture(scope="module")
def following(authd: Authd, service_key: str) -> Verifier:
    verifier = Verifier(authd.url, service_key).start()
    yield verifier
    verifier.close()


@pytest.mark.parametrize("ending", ENDINGS)
def test_the_kit_refuses_an_ended_sessions_token_within_a_second(
    authd: Authd, following: Verifier, ending: str
) -> None:
    keeper = authd.user()
    victim = authd.login(keeper.email)
    assert following.verify(victim.access)["sid"] == victim.session_id
    started = time.monotonic()
    end(authd, ending, keeper, victim)
    refused_within(following, victim.access, started, time.monotonic(), ending)
    if ending in ("logout_local", "delete_session", "refresh_token_reuse", "password_change"):
        assert following.verify(keeper.access)["sid"] == keeper.session_id, "other sessions live on"
    assert following.status().last_error is None


def test_a_session_ended_before_the_start_is_refused_from_the_snapshot(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier]
) -> None:
    ended = authd.user()
    authd.logout(ended.access)
    verifier = make_verifier(authd, service_key)
    with pytest.raises(Revoked):
        verifier.verify(ended.access)
    assert verifier.status().revoked_entries >= 1


def test_entries_are_forgotten_after_their_horizon_plus_the_leeway(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier], clock: FakeClock
) -> None:
    ended = authd.user()
    authd.logout(ended.access)
    entry = next(e for e in authd.feed(service_key).json()["entries"] if e["session_id"] == ended.session_id)
    past_horizon = parse_rfc3339(entry["expires_at"]) - time.time() + 30 + 5
    assert 0 < past_horizon < 3600

    # Loaded with a clock past the horizon: the snapshot is purged on load.
    ahead = FakeClock()
    ahead.advance(past_horizon)
    assert make_verifier(authd, service_key, clock=ahead).status().revoked_entries == 0

    # Held, then forgotten by the running loop once the clock passes the horizon.
    verifier = make_verifier(authd, service_key, clock=clock)
    held = verifier.status().revoked_entries
    assert held >= 1
    with pytest.raises(Revoked):
        verifier.verify(ended.access)
    clock.advance(past_horizon)

    def forgotten() -> bool:
        # A logout answers the held poll, so the loop runs another round and purges (at most
        # once a second by the clock, hence the clock moves on each time).
        clock.advance(2)
        other = authd.user()
        authd.logout(other.access)
        time.sleep(0.05)
        return verifier.status().revoked_entries == 0

    until("the loop forgets the entries", forgotten, 5, 0)


def test_a_logout_is_seen_by_several_verifiers_at_once(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier]
) -> None:
    verifiers = [make_verifier(authd, service_key) for _ in range(3)]
    user = authd.user(email())
    for verifier in verifiers:
        verifier.verify(user.access)
    started = time.monotonic()
    authd.logout(user.access)
    answered = time.monotonic()
    for i, verifier in enumerate(verifiers):
        refused_within(verifier, user.access, started, answered, f"logout, verifier {i + 1} of 3")
