"""authd gone, answering 503, refusing the key, or back on another database: the kit keeps
enforcing what it knows, reports it, and with max_staleness answers Stale."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import pytest

from authd_verify import (
    InvalidServiceKey,
    Revoked,
    Stale,
    Unavailable,
    UnknownKey,
    Unreachable,
    Verifier,
    VerifyError,
)

from authd_process import Authd, until
from conftest import FakeClock
from timing import refused_within


def refused(verifier: Verifier, token: str) -> bool:
    try:
        verifier.verify(token)
        return False
    except Revoked:
        return True


def test_with_authd_stopped_live_tokens_verify_and_ended_sessions_stay_refused(
    spawn_authd: Callable[..., Authd], make_verifier: Callable[..., Verifier]
) -> None:
    authd = spawn_authd()
    key = authd.service_key()
    lenient = make_verifier(authd, key)
    strict = make_verifier(authd, key, max_staleness=2)
    live = authd.user()
    ended = authd.login(live.email)
    authd.logout(ended.access)
    for verifier in (lenient, strict):
        until("the logout reaches the kit", lambda v=verifier: refused(v, ended.access), 2)

    authd.stop()
    stopped = time.monotonic()
    until("the kit notices", lambda: isinstance(lenient.status().last_error, Unreachable), 5)
    assert lenient.verify(live.access)["sid"] == live.session_id
    with pytest.raises(Revoked):
        lenient.verify(ended.access)
    first = lenient.status().staleness
    time.sleep(0.3)
    status = lenient.status()
    assert status.staleness > first and status.ready, "stale but ready: no max_staleness"
    assert status.revoked_entries == 1

    # max_staleness: 503 once the set is older than 2 s, never 401; a known-ended session is
    # still refused as such.
    def stale() -> bool:
        try:
            strict.verify(live.access)
            return False
        except Stale:
            return True

    until("the strict verifier goes stale", stale, 6, 0.05)
    print(f"stale after {time.monotonic() - stopped:.2f} s without authd")
    assert strict.status().staleness >= 2 and not strict.status().ready
    with pytest.raises(Revoked):
        strict.verify(ended.access)
    # Backoff, not a hot loop: 0.1 s doubling to 5 s.
    made = lenient.status().requests
    time.sleep(1)
    assert lenient.status().requests - made <= 3


def test_max_staleness_caps_the_poll_so_a_quiet_feed_never_looks_stale(
    authd: Authd, service_key: str, make_verifier: Callable[..., Verifier]
) -> None:
    verifier = make_verifier(authd, service_key, max_staleness=2, poll_wait=25)
    login = authd.user()
    before = verifier.status().requests
    end = time.monotonic() + 3.2
    while time.monotonic() < end:
        assert verifier.verify(login.access)["sid"] == login.session_id
        assert verifier.status().ready
        time.sleep(0.05)
    # Polls of 1 s (half of max_staleness, whole seconds), not 25.
    assert verifier.status().requests - before >= 2


def test_after_authd_comes_back_on_a_fresh_database_the_kit_reloads(
    spawn_authd: Callable[..., Authd], make_verifier: Callable[..., Verifier]
) -> None:
    first = spawn_authd(name="first")
    key = first.service_key()
    verifier = make_verifier(first, key)
    old = first.user()
    first.logout(old.access)
    until("the first logout reaches the kit", lambda: refused(verifier, old.access), 2)
    assert verifier.status().revoked_entries == 1
    first.stop()

    # The same address, another database (its own keys and cursor key) where the operator
    # made the same service key again.
    second = Authd(first.binary, first.workdir.parent / "second", port=first.port)
    try:
        second.start()
        with sqlite3.connect(first.workdir / "authd.db") as old_db:
            row = old_db.execute("SELECT * FROM service_keys WHERE name = 'kit'").fetchone()
        with sqlite3.connect(second.workdir / "authd.db") as new_db:
            new_db.execute(f"INSERT INTO service_keys VALUES ({', '.join('?' * len(row))})", row)
        # The old cursor: 410, then the new snapshot (without the old entry) and new keys.
        until(
            "the kit reloads from the new database",
            lambda: verifier.status().revoked_entries == 0 and verifier.status().last_error is None,
            10,
        )
        with pytest.raises(VerifyError) as caught:
            verifier.verify(old.access)
        assert isinstance(caught.value, (Revoked, UnknownKey)), "the old database's key left too"
        user = second.user()
        assert verifier.verify(user.access)["sid"] == user.session_id
        started = time.monotonic()
        second.logout(user.access)
        refused_within(verifier, user.access, started, time.monotonic(), "logout after a 410 reload")
    finally:
        second.close()


def test_a_revoked_service_key_is_reported_and_the_set_goes_stale(
    spawn_authd: Callable[..., Authd], make_verifier: Callable[..., Verifier], clock: FakeClock
) -> None:
    authd = spawn_authd()
    key = authd.service_key()
    verifier = make_verifier(authd, key, max_staleness=2, clock=clock)
    login = authd.user()
    authd.cli("service-keys", "revoke", "kit")
    until("the refusal is reported", lambda: isinstance(verifier.status().last_error, InvalidServiceKey), 5)
    assert key not in str(verifier.status())
    clock.advance(3)
    with pytest.raises(Stale):
        verifier.verify(login.access)
    assert not verifier.status().ready


def test_a_503_with_retry_after_is_obeyed_and_revocations_still_arrive(
    spawn_authd: Callable[..., Authd], make_verifier: Callable[..., Verifier]
) -> None:
    # One held poll per key: the second verifier's long-polls answer 503 with Retry-After: 1.
    authd = spawn_authd({"AUTHD_FEED_MAX_WAITERS_PER_KEY": "1"})
    key = authd.service_key()
    holder = make_verifier(authd, key)
    until("the first verifier holds the poll", lambda: holder.status().requests == 3, 5)
    turned_away = make_verifier(authd, key)
    until(
        "the 503 is reported",
        lambda: isinstance(turned_away.status().last_error, Unavailable),
        5,
        0.001,
    )
    error = turned_away.status().last_error
    if error is not None:
        assert error.status == 503 and error.retry_after == 1
    made = turned_away.status().requests
    time.sleep(3)
    # Each second: the refused long-poll and one poll without wait (never capped). Without
    # obeying Retry-After, the 0.1 s backoff would make it 20 and more.
    assert turned_away.status().requests - made <= 8
    login = authd.user()
    started = time.monotonic()
    authd.logout(login.access)
    # Up to one Retry-After (1 s) plus a poll: this one may take longer than a second.
    what = "logout while the feed answers 503 (Retry-After: 1)"
    refused_within(turned_away, login.access, started, time.monotonic(), what, deadline=2.5)
