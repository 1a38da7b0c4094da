"""Verifies authd's access tokens inside your own Python API, and refuses the tokens of ended
sessions within a second, without a request to authd per call.

The core is :class:`Verifier`; the framework adapters are :mod:`authd_verify.fastapi` (a
dependency) and :mod:`authd_verify.starlette` (an ASGI middleware).
"""

from .errors import (
    BadBody,
    CursorExpired,
    Expired,
    FetchError,
    ForbiddenHeader,
    InsufficientScope,
    Invalid,
    InvalidServiceKey,
    Malformed,
    NoKeys,
    NotYetValid,
    Revoked,
    Stale,
    StartError,
    Unavailable,
    UnexpectedStatus,
    UnknownKey,
    Unreachable,
    VerifyError,
)
from .verifier import MAX_TOKEN_LEN, Status, Verifier

__all__ = [
    "MAX_TOKEN_LEN",
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
    "Status",
    "Unavailable",
    "UnexpectedStatus",
    "UnknownKey",
    "Unreachable",
    "Verifier",
    "VerifyError",
]

__version__ = "0.1.0"
