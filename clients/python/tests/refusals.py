"""What every adapter answers to a request it refuses."""

from __future__ import annotations

from typing import Any

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
