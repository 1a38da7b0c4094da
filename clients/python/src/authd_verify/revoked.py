"""The revoked-session set: session id -> the time after which no access token of that session
can verify. Entries are forgotten once that time plus the leeway has passed, so the set holds at
most the revocations of one access-token lifetime.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["RevokedSet"]


class RevokedSet:
    """Ended sessions, by id, with their horizon (``expires_at``, Unix seconds).

    Safe to share between threads: the background loop writes, any thread reads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._horizons: dict[str, float] = {}

    def insert_all(self, entries: Iterable[tuple[str, float]]) -> None:
        """Records ended sessions. Delivery is at least once: a session seen twice keeps the
        later horizon."""
        with self._lock:
            for session_id, horizon in entries:
                held = self._horizons.get(session_id)
                if held is None or horizon > held:
                    self._horizons[session_id] = horizon

    def __contains__(self, session_id: object) -> bool:
        with self._lock:
            return session_id in self._horizons

    def __len__(self) -> int:
        with self._lock:
            return len(self._horizons)

    def purge(self, now: float, leeway: float) -> None:
        """Forgets the sessions whose horizon plus ``leeway`` is before ``now``: no token of
        theirs can verify any more."""
        with self._lock:
            gone = [s for s, horizon in self._horizons.items() if now > horizon + leeway]
            for session_id in gone:
                del self._horizons[session_id]

    def replace_with(self, other: RevokedSet) -> None:
        """Takes over ``other``'s entries in one step (a reloaded snapshot)."""
        with other._lock:
            fresh = dict(other._horizons)
        with self._lock:
            self._horizons = fresh
