"""The errors of the kit: why a token was refused, why a verifier could not start, and why a
request to authd failed.

No message here ever carries a token or the service key.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadBody",
    "CursorExpired",
    "Expired",
    "FetchError",
    "ForbiddenHeader",
    "InsufficientScope",
    "Invalid",
    "InvalidServiceKey",
    "Malformed",
    "NoKeys",
    "NotYetValid",
    "Revoked",
    "Stale",
    "StartError",
    "Unavailable",
    "UnexpectedStatus",
    "UnknownKey",
    "Unreachable",
    "VerifyError",
]


class VerifyError(Exception):
    """Why :meth:`Verifier.verify <authd_verify.Verifier.verify>` refused a token.

    ``status`` is the HTTP status a resource server answers (401, or 503 for :class:`Stale`),
    ``code`` the ``error`` of its JSON body (``invalid_token`` or ``service_unavailable``), and
    ``reason`` names the refusal itself (``malformed``, ``revoked``, ...), for logs and metrics.
    """

    status: ClassVar[int] = 401
    code: ClassVar[str] = "invalid_token"
    reason: ClassVar[str] = "invalid_token"
    default_message: ClassVar[str] = "the token is refused"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class Malformed(VerifyError):
    """Empty, longer than 4096 bytes, or not a compact JWS with a readable JSON header."""

    reason = "malformed"
    default_message = "the token is malformed"


class ForbiddenHeader(VerifyError):
    """The header is not one authd writes: another ``alg`` or ``typ``, or a parameter that
    fetches, embeds or changes the meaning of a key (``jku``, ``jwk``, ``x5u``, ``x5c``,
    ``crit``, ``enc``, ``zip``, ``b64``)."""

    reason = "forbidden_header"
    default_message = "the token's header is not accepted"


class UnknownKey(VerifyError):
    """The header has no ``kid``, or one that names no key of authd's JWKS. An unknown ``kid``
    also asks the background loop to refetch the JWKS (at most once per refetch interval)."""

    reason = "unknown_key"
    default_message = "the token names no known key"


class Invalid(VerifyError):
    """The signature does not verify, a required claim is missing or mistyped, or ``iss`` or
    ``aud`` is not the configured one."""

    reason = "invalid"
    default_message = "the token's signature or claims are invalid"


class Expired(VerifyError):
    """The current time is past ``exp`` plus the leeway."""

    reason = "expired"
    default_message = "the token has expired"


class NotYetValid(VerifyError):
    """``iat`` is further in the future than the leeway."""

    reason = "not_yet_valid"
    default_message = "the token was issued in the future"


class Revoked(VerifyError):
    """The token's session (``sid``) has ended."""

    reason = "revoked"
    default_message = "the token's session has ended"


class Stale(VerifyError):
    """The verifier cannot vouch for the token's session right now: ``max_staleness`` is set and
    authd has not confirmed the revoked-session set for longer than that, or the verifier is not
    started (or already closed). Answers 503, never 401: the token may well be fine."""

    status = 503
    code = "service_unavailable"
    reason = "stale"
    default_message = "the revoked-session set is stale"


class FetchError(Exception):
    """Why one request to authd failed. ``Status.last_error`` reports the latest one while the
    feed is failing."""


class Unreachable(FetchError):
    """No answer: connection refused or reset, DNS, TLS, or the request timed out."""


class InvalidServiceKey(FetchError):
    """401 ``invalid_service_key``: the key is unknown or revoked."""

    def __init__(self) -> None:
        super().__init__("authd refused the service key (invalid_service_key)")


class InsufficientScope(FetchError):
    """403 ``insufficient_scope``: the key lacks the scope ``revocations:read``."""

    def __init__(self) -> None:
        super().__init__("the service key lacks the scope revocations:read (insufficient_scope)")


class Unavailable(FetchError):
    """503 or 429, with the ``Retry-After`` authd asked for (seconds), if any."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"authd is unavailable (status {status})")
        self.status = status
        self.retry_after = retry_after


class CursorExpired(FetchError):
    """410 ``cursor_expired``: authd can no longer serve the cursor; the snapshot is reloaded."""

    def __init__(self) -> None:
        super().__init__("authd can no longer serve the cursor (cursor_expired)")


class UnexpectedStatus(FetchError):
    """Any other status, with the body's ``error`` code (empty when there was none)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"authd answered status {status} ({code or 'no error code'})")
        self.status = status
        self.code = code


class BadBody(FetchError):
    """A 200 whose body is not what the contract says."""


class NoKeys(FetchError):
    """The JWKS holds no Ed25519 signing key."""

    def __init__(self) -> None:
        super().__init__("the JWKS holds no Ed25519 signing key")


class StartError(Exception):
    """:meth:`Verifier.start <authd_verify.Verifier.start>` could not load what a verifier needs
    before it may answer: ``stage`` is ``"jwks"`` or ``"snapshot"``, ``cause`` the
    :class:`FetchError`. The start is not retried: a service that cannot refuse ended sessions
    should fail loudly and let its supervisor restart it."""

    def __init__(self, stage: str, cause: FetchError) -> None:
        what = "the JWKS" if stage == "jwks" else "the revocation snapshot"
        super().__init__(f"{what} could not be loaded: {cause}")
        self.stage = stage
        self.cause = cause
        self.__cause__ = cause
