"""The two requests the verifier makes to authd: the JWKS and a page of the revocation feed.
Every request is counted, so that tests can prove that verification itself makes none.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .errors import (
    BadBody,
    CursorExpired,
    InsufficientScope,
    InvalidServiceKey,
    Unavailable,
    UnexpectedStatus,
    Unreachable,
)
from .keys import KeySet, parse_jwks
from .revoked import RevokedSet

__all__ = ["AuthdClient", "Page", "parse_rfc3339"]

#: Entries asked for per page.
PAGE_LIMIT = 1000

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d))")


def parse_rfc3339(text: Any) -> float:
    """An RFC 3339 date-time (any offset) in Unix seconds; ``ValueError`` if it is not one."""
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    secs = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if m.group(9):
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        secs -= offset if m.group(9) == "+" else -offset
    return secs + (float(m.group(7)) if m.group(7) else 0.0)


@dataclass(frozen=True)
class Page:
    """One answer of the feed: ``(session_id, horizon)`` pairs, the cursor, and ``more``."""

    entries: list[tuple[str, float]]
    cursor: str
    more: bool


class AuthdClient:
    """An asynchronous client for one authd, holding the service key."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        authorization: Callable[[], str],
        timeout: float,
        on_request: Callable[[], None],
    ) -> None:
        self._http = http
        self._jwks_url = f"{base_url}/.well-known/jwks.json"
        self._feed_url = f"{base_url}/auth/revocations"
        # A callable, so that the key sits in no attribute a debugger or `vars()` prints.
        self._authorization = authorization
        self._timeout = timeout
        # Counts every request sent, so that tests can prove `verify` makes none.
        self._count = on_request

    async def jwks(self) -> KeySet:
        """``GET /.well-known/jwks.json``: the Ed25519 keys, by ``kid``."""
        self._count()
        try:
            answer = await self._http.get(self._jwks_url, timeout=self._timeout)
        except httpx.HTTPError as e:
            raise Unreachable(f"authd could not be reached: {_describe(e)}") from None
        _check(answer)
        return parse_jwks(answer.content)

    async def page(self, cursor: str | None, wait: int) -> Page:
        """``GET /auth/revocations``: the snapshot's first page without ``cursor``, else the
        entries after it, held up to ``wait`` seconds while there are none."""
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if cursor is not None:
            params["cursor"] = cursor
        if wait > 0:
            params["wait"] = wait
        self._count()
        try:
            answer = await self._http.get(
                self._feed_url,
                params=params,
                headers={"Authorization": self._authorization()},
                timeout=self._timeout + wait,
            )
        except httpx.HTTPError as e:
            raise Unreachable(f"authd could not be reached: {_describe(e)}") from None
        _check(answer)
        return _read_page(answer)

    async def snapshot(self, now: Callable[[], float], leeway: float) -> tuple[RevokedSet, str]:
        """The whole snapshot, page after page, purged of the entries already past ``now``
        plus ``leeway``; with the cursor to follow next."""
        revoked = RevokedSet()
        cursor: str | None = None
        while True:
            page = await self.page(cursor, 0)
            revoked.insert_all(page.entries)
            revoked.purge(now(), leeway)
            if not page.more:
                return revoked, page.cursor
            cursor = page.cursor


def _read_page(answer: httpx.Response) -> Page:
    """The page of a 200. A page with an unreadable entry is refused whole (and retried):
    skipping the entry would let that session's tokens verify."""
    try:
        body = answer.json()
    except ValueError as e:
        raise BadBody(f"the feed's answer is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadBody("the feed's answer is not an object")
    entries, cursor, more = body.get("entries"), body.get("cursor"), body.get("more")
    if not isinstance(entries, list) or not isinstance(cursor, str) or not isinstance(more, bool):
        raise BadBody("the feed's answer lacks entries, cursor or more")
    read = []
    for entry in entries:
        session_id = entry.get("session_id") if isinstance(entry, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise BadBody("a feed entry has no session_id")
        try:
            horizon = parse_rfc3339(entry.get("expires_at"))
        except ValueError as e:
            raise BadBody(f"a feed entry's expires_at: {e}") from None
        read.append((session_id, horizon))
    return Page(read, cursor, more)


def _check(answer: httpx.Response) -> None:
    """Nothing for a success, else the contract's error for the status."""
    status = answer.status_code
    if 200 <= status < 300:
        return
    if status == 401:
        raise InvalidServiceKey()
    if status == 403:
        raise InsufficientScope()
    if status == 410:
        raise CursorExpired()
    if status in (429, 503):
        raise Unavailable(status, _retry_after(answer.headers.get("retry-after")))
    try:
        body = answer.json()
        code = body.get("error", "") if isinstance(body, dict) else ""
    except ValueError:
        code = ""
    raise UnexpectedStatus(status, code if isinstance(code, str) else "")


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delay form; an HTTP date counts as absent)."""
    try:
        secs = float(value) if value is not None else None
    except ValueError:
        return None
    return secs if secs is not None and 0 <= secs < float("inf") else None


def _describe(e: BaseException) -> str:
    """The error and its distinct causes (httpx's own text can be empty or repeated)."""
    parts: list[str] = []
    cause: BaseException | None = e
    while cause is not None and len(parts) < 4:
        text = str(cause) or type(cause).__name__
        if not parts or text not in parts[-1]:
            parts.append(text)
        cause = cause.__cause__ or cause.__context__
    return f"{type(e).__name__}: " + ": ".join(parts)
