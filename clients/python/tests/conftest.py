"""Fixtures: a live authd shared by the session, private ones for the tests that stop theirs,
verifiers closed after each test, and a clock the tests move instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from authd_verify import Verifier

from authd_process import Authd, authd_binary
from timing import TIMINGS


class FakeClock:
    """The wall clock plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(scope="session")
def binary() -> Path:
    return authd_binary()


@pytest.fixture(scope="session")
def authd(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authd]:
    """One authd for the tests that do not stop it."""
    server = Authd(binary, tmp_path_factory.mktemp("authd")).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def service_key(authd: Authd) -> str:
    return authd.service_key("kit")


@pytest.fixture
def spawn_authd(binary: Path, tmp_path: Path) -> Iterator[Callable[..., Authd]]:
    """Starts private authd processes (``spawn_authd(env={...})``), stopped after the test."""
    started: list[Authd] = []

    def spawn(env: dict[str, str] | None = None, name: str = "authd") -> Authd:
        server = Authd(binary, tmp_path / f"{name}-{len(started)}", env)
        started.append(server)
        return server.start()

    try:
        yield spawn
    finally:
        for server in started:
            server.close()


@pytest.fixture(scope="module")
def verifier(authd: Authd, service_key: str) -> Iterator[Verifier]:
    """One started verifier on the session's authd, shared by a test module."""
    verifier = Verifier(authd.url, service_key).start()
    yield verifier
    verifier.close()


@pytest.fixture
def make_verifier() -> Iterator[Callable[..., Verifier]]:
    """Starts verifiers (``make_verifier(authd, key, **settings)``), closed after the test."""
    made: list[Verifier] = []

    def make(server: Authd, key: str, **settings: Any) -> Verifier:
        verifier = Verifier(server.url, key, **settings)
        made.append(verifier)
        return verifier.start()

    try:
        yield make
    finally:
        for verifier in made:
            verifier.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("authd-verify: ended sessions refused after (ms)")
        terminalreporter.write_line(f"{'how the session ended':<52} {'from request':>12} {'from answer':>12}")
        for what, from_start, from_answer in TIMINGS:
            terminalreporter.write_line(f"{what:<52} {from_start:12.1f} {from_answer:12.1f}")


class StaleSetup:
    """A verifier with ``max_staleness`` whose authd is gone and whose clock is past it."""

    def __init__(self, verifier: Verifier, live: str, ended: str) -> None:
        self.verifier = verifier
        self.live = live
        self.ended = ended


@pytest.fixture(scope="session")
def stale(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaleSetup]:
    from authd_verify import Revoked, Unreachable

    from authd_process import until

    server = Authd(binary, tmp_path_factory.mktemp("stale")).start()
    moved = FakeClock()
    verifier = Verifier(server.url, server.service_key(), max_staleness=2, clock=moved).start()
    try:
        live = server.user()
        ended = server.login(live.email)
        server.logout(ended.access)

        def refused() -> bool:
            try:
                verifier.verify(ended.access)
                return False
            except Revoked:
                return True

        until("the logout reaches the kit", refused, 2)
        server.stop()
        until("the kit notices", lambda: isinstance(verifier.status().last_error, Unreachable), 5)
        moved.advance(10)
        yield StaleSetup(verifier, live.access, ended.access)
    finally:
        verifier.close()
        server.close()
