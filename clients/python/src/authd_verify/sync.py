"""The background loop: one long-poll loop on the revocation feed and one JWKS loop, on one
asyncio event loop (the verifier's own thread's, or the caller's with ``astart``)."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from .client import AuthdClient
from .errors import CursorExpired, FetchError, StartError, Unavailable, Unreachable
from .state import Shared

__all__ = ["Backoff", "load", "run"]

log = logging.getLogger("authd_verify")

#: The first retry delay after a failure, in seconds.
BACKOFF_START = 0.1
#: The longest retry delay.
BACKOFF_MAX = 5.0
#: The longest ``Retry-After`` obeyed.
RETRY_AFTER_MAX = 60.0
#: While failing, a warning at most this often (the others go to debug).
WARN_EVERY = 60.0
#: The next JWKS attempt after a failed one.
JWKS_RETRY = 30.0


async def load(shared: Shared, client: AuthdClient) -> str:
    """Loads the JWKS and the whole snapshot into ``shared``; returns the cursor to follow.
    Raises :class:`~authd_verify.StartError` naming what could not be loaded."""
    keys, snapshot = await asyncio.gather(
        client.jwks(),
        client.snapshot(shared.clock, shared.config.leeway),
        return_exceptions=True,
    )
    if isinstance(keys, BaseException):
        raise _start_error("jwks", keys)
    if isinstance(snapshot, BaseException):
        raise _start_error("snapshot", snapshot)
    revoked, cursor = snapshot
    shared.keys = keys
    shared.revoked.replace_with(revoked)
    shared.synced()
    log.info("authd verifier ready: %d keys, %d ended sessions", len(keys), len(revoked))
    return cursor


def _start_error(stage: str, error: BaseException) -> BaseException:
    return StartError(stage, error) if isinstance(error, FetchError) else error


async def run(shared: Shared, client: AuthdClient, cursor: str) -> None:
    """Runs both loops until cancelled."""
    wanted = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(wanted.set)
        except RuntimeError:  # the loop has closed
            pass

    shared.install_jwks_waker(wake)
    try:
        await asyncio.gather(_feed_loop(shared, client, cursor), _jwks_loop(shared, client, wanted))
    finally:
        shared.install_jwks_waker(None)


async def _feed_loop(shared: Shared, client: AuthdClient, cursor: str) -> None:
    # `None`: the cursor expired and the snapshot must be loaded again.
    following: str | None = cursor
    backoff = Backoff()
    failing = _Failing()
    # Whether the cursor followed is a reload's: a 410 for it is not answered by a reload at once.
    just_reloaded = False
    while True:
        shared.purge_if_due()
        # After a failure the next poll does not wait, so that a recovery shows at once.
        wait = 0 if failing.active else shared.config.poll_wait
        reloading = following is None
        try:
            if following is None:
                following = await _reload(shared, client)
            else:
                following = await _follow(shared, client, following, wait)
        except CursorExpired as error:
            if reloading:
                await _pause(shared, failing, error, backoff.next())
            else:
                following = None
                if just_reloaded:
                    await _pause(shared, failing, error, backoff.next())
                else:
                    log.info("authd can no longer serve the feed's cursor; reloading the snapshot")
        except FetchError as error:
            if isinstance(error, Unavailable) and error.retry_after is not None:
                delay = min(error.retry_after, RETRY_AFTER_MAX)
            else:
                delay = backoff.next()
            await _pause(shared, failing, error, delay)
        except Exception as error:  # a bug must not end the loop: the set would go stale silently
            log.exception("the revocation feed loop failed unexpectedly")
            await _pause(shared, failing, Unreachable(f"unexpected {type(error).__name__}"), backoff.next())
        else:
            just_reloaded = reloading
            shared.synced()
            backoff.reset()
            failing.recovered()


async def _follow(shared: Shared, client: AuthdClient, cursor: str, wait: int) -> str:
    """One poll, held up to ``wait`` seconds: applies its entries, returns the next cursor."""
    page = await client.page(cursor, wait)
    shared.revoked.insert_all(page.entries)
    return page.cursor


async def _reload(shared: Shared, client: AuthdClient) -> str:
    """Loads the whole snapshot again and swaps it in only once complete, so that the sessions
    already known stay refused meanwhile. The JWKS is loaded again first: a 410 usually means
    another database, whose keys are not the ones held, and the old database's tokens must not
    verify once its ended sessions have left the set."""
    keys = await client.jwks()
    revoked, cursor = await client.snapshot(shared.clock, shared.config.leeway)
    shared.keys = keys
    shared.revoked.replace_with(revoked)
    log.info("revocation snapshot reloaded: %d ended sessions", len(revoked))
    return cursor


async def _pause(shared: Shared, failing: _Failing, error: FetchError, delay: float) -> None:
    """Reports a failure, then waits ``delay`` seconds before the next attempt."""
    failing.report(error, delay)
    shared.failed(error)
    await asyncio.sleep(delay)


async def _jwks_loop(shared: Shared, client: AuthdClient, wanted: asyncio.Event) -> None:
    refresh = shared.config.jwks_refresh_interval
    next_in = refresh
    while True:
        try:
            await asyncio.wait_for(wanted.wait(), next_in)
        except asyncio.TimeoutError:
            pass
        wanted.clear()
        try:
            keys = await client.jwks()
        except FetchError as error:
            log.warning("the JWKS could not be refetched (%s); keeping the keys held", error)
            next_in = min(JWKS_RETRY, refresh)
        except Exception:  # a bug must not end the loop, nor the feed's with it
            log.exception("the JWKS refetch failed unexpectedly; keeping the keys held")
            next_in = min(JWKS_RETRY, refresh)
        else:
            log.debug("JWKS refetched: %d keys", len(keys))
            shared.keys = keys
            next_in = refresh


class Backoff:
    """Capped exponential backoff with jitter: each delay between half and all of its step,
    the steps doubling from 0.1 s to 5 s."""

    def __init__(self) -> None:
        self.failures = 0
        self._random = random.Random()

    def next(self) -> float:
        step = min(BACKOFF_START * float(2 ** min(self.failures, 16)), BACKOFF_MAX)
        self.failures += 1
        return step * self._random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


class _Failing:
    """Keeps failure logs to one warning a minute, also when authd fails and recovers in turn
    (a 503 every other poll)."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.last_warned: float | None = None
        self.warned = False

    @property
    def active(self) -> bool:
        return self.since is not None

    def report(self, error: FetchError, retry_in: float) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if self.last_warned is None or now - self.last_warned >= WARN_EVERY:
            self.last_warned = now
            self.warned = True
            log.warning(
                "the revocation feed failed (%s); retrying in %.1f s; enforcing the last known "
                "set of ended sessions",
                error,
                retry_in,
            )
        else:
            log.debug("the revocation feed failed again (%s); retrying in %.1f s", error, retry_in)

    def recovered(self) -> None:
        if self.since is not None and self.warned:
            log.info("the revocation feed answers again after %.1f s", time.monotonic() - self.since)
        self.since = None
        self.warned = False
