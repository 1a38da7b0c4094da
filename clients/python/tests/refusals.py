"""What every adapter answers to a request it refuses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from timing import DEADLINE, record

INVALID = 'Bearer error="invalid_token"'


def assert_refused(r: Any) -> None:
    """A 401 with the kit's challenge and its one error body."""
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == INVALID
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json() == {
        "error": "invalid_token",
        "message": "The access token is missing, invalid or expired.",
    }


def refused_after_logout(authd: Any, access: str, get: Callable[[], Any], what: str) -> None:
    """Logs the session of ``access`` out through authd, then calls ``get`` (a request made with
    ``access``) until it is refused, within ``DEADLINE``; records the time under ``what`` and
    checks the refusal is the adapter's one 401."""
    started = time.monotonic()
    authd.logout(access)
    answered = time.monotonic()
    while get().status_code == 200:
        assert time.monotonic() - answered < DEADLINE, "the ended session is still accepted"
        time.sleep(0.005)
    record(what, started, answered)
    assert_refused(get())
