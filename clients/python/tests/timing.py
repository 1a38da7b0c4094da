"""How long an ended session's token stays accepted: measured, recorded for the summary at the
end of the run, and held to the one-second promise."""

from __future__ import annotations

import os
import time

from authd_verify import Revoked, Verifier

#: The promise is one second; CI on a loaded machine may widen it (the times are printed).
DEADLINE = float(os.environ.get("AUTHD_KIT_DEADLINE_SECS", "1.0"))

#: (what, ms from the start of the request that ended the session, ms from its answer).
TIMINGS: list[tuple[str, float, float]] = []


def refused_within(
    verifier: Verifier, token: str, started: float, answered: float, what: str, deadline: float = DEADLINE
) -> None:
    """Verifies ``token`` every 2 ms until it is refused as revoked, and records how long that
    took from the start of the request that ended the session and from its answer. The session
    ends at a commit between the two; the deadline is counted from the answer, so that a slow
    request (argon2 on a loaded machine, a command-line process opening the database) does not
    count as propagation."""
    while True:
        try:
            verifier.verify(token)
        except Revoked:
            record(what, started, answered)
            return
        took = time.monotonic() - answered
        assert took < deadline, f"{what}: still accepted {took * 1000:.0f} ms after the session ended"
        time.sleep(0.002)


def record(what: str, started: float, answered: float) -> None:
    now = time.monotonic()
    TIMINGS.append((what, (now - started) * 1000, (now - answered) * 1000))
