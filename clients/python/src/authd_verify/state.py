"""What the verifier and its background loop share: the settings, the key set, the
revoked-session set, and when authd last confirmed them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .errors import FetchError
from .keys import KeySet
from .revoked import RevokedSet

__all__ = ["Config", "Shared"]

#: The longest the revoked set goes unpurged while the feed answers, in seconds.
PURGE_EVERY = 1.0


@dataclass(frozen=True)
class Config:
    """The settings fixed at construction (durations in seconds)."""

    base_url: str
    issuer: str
    audience: str
    leeway: float
    max_staleness: float | None
    #: The long-poll's ``wait``, whole seconds from 1 to 30.
    poll_wait: int
    jwks_refetch_interval: float
    jwks_refresh_interval: float
    request_timeout: float


class Shared:
    """The state behind a verifier and its background loop. Every method is safe to call from
    any thread."""

    def __init__(self, config: Config, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        #: Replaced whole (never mutated), so a reader needs no lock.
        self.keys: KeySet = {}
        self.revoked = RevokedSet()
        self._last_sync: float | None = None
        self._last_error: FetchError | None = None
        self._last_purge = float("-inf")
        self._last_refetch = float("-inf")
        self._requests = 0
        self._wake_jwks: Callable[[], None] | None = None

    # Requests.
    def count_request(self) -> None:
        """Counts one HTTP request sent to authd."""
        with self._lock:
            self._requests += 1

    @property
    def requests(self) -> int:
        """How many HTTP requests were sent to authd so far."""
        return self._requests

    # The feed's health.
    def synced(self) -> None:
        """Records a successful answer of the feed."""
        now = self.clock()
        with self._lock:
            self._last_sync = now
            self._last_error = None

    def failed(self, error: FetchError) -> None:
        """Records a failed request to the feed."""
        with self._lock:
            self._last_error = error

    @property
    def last_sync(self) -> float | None:
        """When the feed last answered successfully (Unix seconds, by the clock)."""
        return self._last_sync

    @property
    def last_error(self) -> FetchError | None:
        """The latest failure since the last success."""
        return self._last_error

    def staleness(self) -> float | None:
        """Seconds since the feed last answered successfully (zero if the clock went back)."""
        last = self._last_sync
        return None if last is None else max(0.0, self.clock() - last)

    def is_stale(self) -> bool:
        """Whether ``max_staleness`` is set and exceeded."""
        limit = self.config.max_staleness
        if limit is None:
            return False
        staleness = self.staleness()
        return staleness is None or staleness > limit

    # The revoked set.
    def purge_if_due(self) -> None:
        """Forgets the entries past their horizon plus the leeway, at most once a second (and
        at once if the clock went back)."""
        now = self.clock()
        with self._lock:
            if self._last_purge <= now < self._last_purge + PURGE_EVERY:
                return
            self._last_purge = now
        self.revoked.purge(now, self.config.leeway)

    # The JWKS.
    def install_jwks_waker(self, wake: Callable[[], None] | None) -> None:
        """Sets how :meth:`want_jwks` wakes the background loop (``None`` once it has ended)."""
        self._wake_jwks = wake

    def want_jwks(self) -> None:
        """Asks the background loop to refetch the JWKS, unless an unknown ``kid`` already did
        within the refetch interval. Never blocks."""
        now = self.clock()
        with self._lock:
            last = self._last_refetch
            # A clock that went back does not hold refetches off until it catches up.
            if last <= now < last + self.config.jwks_refetch_interval:
                return
            self._last_refetch = now
        wake = self._wake_jwks
        if wake is not None:
            wake()
