"""The verifier: checks an access token against authd's keys and the revoked-session set, in
memory, from any thread; and runs the background loop that keeps both up to date."""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import httpx
import jwt

from . import sync
from .client import AuthdClient
from .errors import (
    Expired,
    FetchError,
    ForbiddenHeader,
    Invalid,
    Malformed,
    NotYetValid,
    Revoked,
    Stale,
    UnknownKey,
)
from .state import Config, Shared

__all__ = ["MAX_TOKEN_LEN", "Status", "Verifier"]

#: Tokens longer than this many bytes are refused before any parsing.
MAX_TOKEN_LEN = 4096
#: The most seconds authd holds a long-poll.
MAX_POLL_WAIT = 30
#: The least ``max_staleness``: a long-poll must be able to come back well within it.
MIN_MAX_STALENESS = 2.0

_TYP = "at+jwt"
_ALGORITHMS = ["EdDSA"]
_FORBIDDEN_HEADERS = ("jku", "jwk", "x5u", "x5c", "crit", "enc", "zip", "b64")
_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]
_DECODE_OPTIONS: Any = {
    "require": _REQUIRED,
    "verify_signature": True,
    "verify_aud": True,
    "verify_iss": True,
    "strict_aud": True,
    # exp, iat and nbf are checked against the configured clock in `verify`.
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
}
# A compact JWS: three base64url segments, the signature not empty.
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Status:
    """What a verifier knows, for health checks and metrics."""

    #: Whether ``verify`` answers from authd's state: started, the snapshot loaded, not closed,
    #: and ``max_staleness`` (if set) not exceeded.
    ready: bool
    #: When the feed last answered successfully (a long-poll that ended empty counts), in UTC.
    last_sync: datetime | None
    #: Seconds since ``last_sync``.
    staleness: float | None
    #: How many ended sessions are held.
    revoked_entries: int
    #: How many keys the JWKS gave.
    keys: int
    #: How many HTTP requests the verifier has sent to authd so far.
    requests: int
    #: The latest failure of the feed since its last success (``None`` while it answers).
    last_error: FetchError | None


class _Secret:
    """The ``Authorization`` value; its ``repr`` hides it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"


class Verifier:
    """Verifies authd's access tokens locally and refuses the tokens of ended sessions.

    ``start()`` (or ``await astart()``) loads authd's JWKS and the whole revocation snapshot,
    then keeps a long-poll on the feed open in the background; ``verify(token)`` is then a
    memory-only check, safe from any thread. Durations are in seconds.

    :param base_url: authd's URL, e.g. ``https://auth.example.com``.
    :param service_key: a service key (``authd_sk_...``) with the scope ``revocations:read``.
    :param issuer: the ``iss`` tokens must carry; default: ``base_url`` without trailing slash.
    :param audience: the ``aud`` tokens must carry (a string, equal).
    :param leeway: the clock-skew allowance on ``exp`` and ``iat``, also kept on each ended
        session's horizon.
    :param max_staleness: when set (at least 2), ``verify`` raises :class:`~authd_verify.Stale`
        once the feed has not answered for longer than this; the long-poll then waits at most
        half of it. Default: unset (an unreachable authd leaves the last known set enforced).
    :param poll_wait: how long authd may hold a long-poll that has nothing new (1 to 30).
    :param jwks_refetch_interval: the least time between two JWKS refetches asked for by
        tokens with an unknown ``kid``.
    :param jwks_refresh_interval: how often the JWKS is refetched anyway (retired keys leave).
    :param request_timeout: the time limit of a request to authd (a long-poll gets its wait on
        top).
    :param clock: the current time in Unix seconds; tests pass one they can move.
    :param http_options: extra keyword arguments for ``httpx.AsyncClient`` (``verify``,
        ``proxy``, ``transport``, ...); not ``timeout`` or ``base_url``.
    """

    def __init__(
        self,
        base_url: str,
        service_key: str,
        issuer: str | None = None,
        audience: str = "authd",
        leeway: float = 30,
        max_staleness: float | None = None,
        poll_wait: float = 25,
        jwks_refetch_interval: float = 10,
        *,
        jwks_refresh_interval: float = 300,
        request_timeout: float = 10,
        clock: Callable[[], float] | None = None,
        http_options: Mapping[str, Any] | None = None,
    ) -> None:
        base = _base_url(base_url)
        if not isinstance(service_key, str) or not service_key.strip() or not _header_safe(service_key):
            raise ValueError("the service key is empty or cannot travel in an HTTP header")
        if max_staleness is not None and max_staleness < MIN_MAX_STALENESS:
            raise ValueError("max_staleness must be at least 2 seconds")
        for name, value in (("leeway", leeway), ("jwks_refetch_interval", jwks_refetch_interval)):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if jwks_refresh_interval <= 0 or request_timeout <= 0:
            raise ValueError("jwks_refresh_interval and request_timeout must be positive")
        wait = poll_wait if max_staleness is None else min(poll_wait, max_staleness / 2)
        self._config = Config(
            base_url=base,
            issuer=base if issuer is None else issuer,
            audience=audience,
            leeway=float(leeway),
            max_staleness=None if max_staleness is None else float(max_staleness),
            poll_wait=max(1, min(MAX_POLL_WAIT, math.floor(wait))),
            jwks_refetch_interval=float(jwks_refetch_interval),
            jwks_refresh_interval=float(jwks_refresh_interval),
            request_timeout=float(request_timeout),
        )
        self._authorization = _Secret(f"Bearer {service_key}")
        self._http_options: dict[str, Any] = dict(http_options or {})
        self._shared = Shared(self._config, clock or time.time)
        self._lock = threading.Lock()
        self._started = False
        self._running = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    # Verification.
    def verify(self, token: str) -> dict[str, Any]:
        """Verifies ``token`` (the compact JWS, without ``Bearer``) and returns its claims:
        ``sub``, ``sid``, ``iss``, ``aud``, ``exp``, ``iat``, ``jti``, ``email`` (when present)
        and every other claim. Makes no request; raises a :class:`~authd_verify.VerifyError`.
        An unknown ``kid`` is refused and asks the background loop for a JWKS refetch."""
        if isinstance(token, (bytes, bytearray)):
            try:
                token = bytes(token).decode("ascii")
            except UnicodeDecodeError:
                raise Malformed() from None
        if not self._running:
            raise Stale("the verifier is not running (not started, or closed)")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LEN:
            raise Malformed()
        if not _COMPACT.fullmatch(token):
            raise Malformed()
        header = _header(token)
        if (
            header.get("alg") != "EdDSA"
            or header.get("typ") != _TYP
            or any(name in header for name in _FORBIDDEN_HEADERS)
        ):
            raise ForbiddenHeader()
        shared = self._shared
        kid = header.get("kid")
        key = shared.keys.get(kid) if isinstance(kid, str) and kid else None
        if key is None:
            if isinstance(kid, str) and kid:
                shared.want_jwks()
            raise UnknownKey()
        config = self._config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=_ALGORITHMS,
                audience=config.audience,
                issuer=config.issuer,
                options=_DECODE_OPTIONS,
            )
        except jwt.InvalidTokenError:
            raise Invalid() from None
        _check_claim_types(claims)
        now = shared.clock()
        if now > claims["exp"] + config.leeway:
            raise Expired()
        if max(claims["iat"], claims.get("nbf", 0)) > now + config.leeway:
            raise NotYetValid()
        if claims["exp"] < claims["iat"]:
            raise Invalid()
        # A session known to have ended is refused even when the set is stale.
        if claims["sid"] in shared.revoked:
            raise Revoked()
        if shared.is_stale():
            raise Stale()
        return claims

    def status(self) -> Status:
        """What the verifier knows now."""
        shared = self._shared
        last_sync = shared.last_sync
        return Status(
            ready=self._running and not shared.is_stale(),
            last_sync=None if last_sync is None else datetime.fromtimestamp(last_sync, timezone.utc),
            staleness=shared.staleness(),
            revoked_entries=len(shared.revoked),
            keys=len(shared.keys),
            requests=shared.requests,
            last_error=shared.last_error,
        )

    # Life cycle: a thread of its own.
    def start(self) -> Verifier:
        """Loads the JWKS and the whole revocation snapshot, blocking, then starts a daemon
        thread running the long-poll loop. Raises :class:`~authd_verify.StartError` if either
        cannot be loaded (no retry). Returns the verifier."""
        self._claim_start()
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(target=self._thread_main, args=(started,), name="authd-verify", daemon=True)
        self._thread = thread
        thread.start()
        try:
            started.result()
        except BaseException:
            self.close()
            raise
        return self

    def _thread_main(self, started: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        http = self._http_client()
        try:
            loop.run_until_complete(self._serve(started, http))
        finally:
            # Outside the task that close() cancels, so that nothing interrupts the clean-up.
            loop.run_until_complete(http.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, started: concurrent.futures.Future[None], http: httpx.AsyncClient) -> None:
        try:
            try:
                self._loop = asyncio.get_running_loop()
                self._task = asyncio.current_task()
                client = self._authd_client(http)
                cursor = await sync.load(self._shared, client)
            except BaseException as e:  # noqa: BLE001 - handed to the caller of start()
                if isinstance(e, asyncio.CancelledError):
                    e = RuntimeError("the verifier was closed while starting")
                started.set_exception(e)
                return
            self._running = not self._closed
            started.set_result(None)
            if self._running:
                await sync.run(self._shared, client, cursor)
        except asyncio.CancelledError:
            pass
        finally:
            self._running = False

    # Life cycle: the caller's event loop.
    async def astart(self) -> Verifier:
        """Like :meth:`start`, on the running asyncio event loop: loads the JWKS and the
        snapshot, then runs the long-poll loop as a task of that loop. Returns the verifier."""
        self._claim_start()
        http = self._http_client()
        client = self._authd_client(http)
        try:
            cursor = await sync.load(self._shared, client)
        except BaseException:
            self._closed = True
            await http.aclose()
            raise
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._task = self._loop.create_task(self._run_task(http, client, cursor), name="authd-verify")
        return self

    async def _run_task(self, http: httpx.AsyncClient, client: AuthdClient, cursor: str) -> None:
        try:
            await sync.run(self._shared, client, cursor)
        except asyncio.CancelledError:
            pass
        finally:
            self._running = False
            await http.aclose()

    # Shutdown.
    def close(self, timeout: float = 5.0) -> None:
        """Stops the background loop (at once: the held long-poll is cancelled). Afterwards
        ``verify`` raises :class:`~authd_verify.Stale`. Idempotent."""
        with self._lock:
            cancel = not self._closed
            self._closed = True
        self._running = False
        loop, task = self._loop, self._task
        # One cancel only: a second one could interrupt the task's own clean-up.
        if cancel and loop is not None and task is not None and not task.done():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop has already closed
                pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    async def aclose(self) -> None:
        """:meth:`close`, then waits for the loop's task to end (``astart`` verifiers)."""
        task = self._task
        self.close()
        if task is not None and self._thread is None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(task, return_exceptions=True)

    def __enter__(self) -> Verifier:  # noqa: PYI034 - Self needs Python 3.11
        return self if self._started else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Verifier:  # noqa: PYI034 - Self needs Python 3.11
        return self if self._started else await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        c = self._config
        return (
            f"Verifier(base_url={c.base_url!r}, issuer={c.issuer!r}, audience={c.audience!r}, "
            f"service_key=<redacted>, ready={self.status().ready})"
        )

    # Helpers.
    def _claim_start(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError("a Verifier starts once; make a new one")
            self._started = True

    def _http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(**self._http_options)

    def _authd_client(self, http: httpx.AsyncClient) -> AuthdClient:
        return AuthdClient(
            http,
            self._config.base_url,
            self._authorization.reveal,
            self._config.request_timeout,
            self._shared.count_request,
        )


def _header(token: str) -> dict[str, Any]:
    """The token's JOSE header, read here rather than by PyJWT so that each refusal keeps its
    own type whatever PyJWT's version checks on its own (``crit``, ``b64``, ``kid``)."""
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise Malformed() from None
    if not isinstance(header, dict):
        raise Malformed()
    return header


def _check_claim_types(claims: Mapping[str, Any]) -> None:
    """The claims authd writes, with the types it writes them in."""
    for name in ("iss", "aud", "sub", "sid", "jti"):
        if not isinstance(claims.get(name), str):
            raise Invalid()
    for name in ("iat", "exp", "nbf"):
        value = claims.get(name)
        if name == "nbf" and name not in claims:
            continue  # authd never writes nbf; one that is there is honoured (RFC 7519)
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid()
    email = claims.get("email")
    if email is not None and not isinstance(email, str):
        raise Invalid()


def _base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, if it is an http(s) URL."""
    if not isinstance(base_url, str):
        raise TypeError("base_url must be a string")
    base = base_url.rstrip("/")
    try:
        url = httpx.URL(base)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ValueError(f"the base URL is not an http(s) URL: {base_url!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"the base URL is not an http(s) URL: {base_url!r}")
    return base


def _header_safe(value: str) -> bool:
    return all(0x21 <= ord(c) <= 0x7E for c in value)
