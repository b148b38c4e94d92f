"""Machine-readable prefixes for ``OK`` and ``CLOSED`` messages (NIP-01).

Clients decide what to do next by the prefix (nostr-sdk retries after AUTH on
``auth-required:``), so every rejection in the relay is built here from a
:class:`Reason` and never by hand-writing a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """The standard NIP-01 prefixes."""

    INVALID = "invalid"
    BLOCKED = "blocked"
    RATE_LIMITED = "rate-limited"
    AUTH_REQUIRED = "auth-required"
    RESTRICTED = "restricted"
    DUPLICATE = "duplicate"
    ERROR = "error"
    POW = "pow"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why something was refused: a prefix and a human-readable detail."""

    reason: Reason
    detail: str

    def message(self) -> str:
        """The text for an ``OK``/``CLOSED`` message: ``"<prefix>: <detail>"``."""
        return f"{self.reason.value}: {self.detail}"


def invalid(detail: str) -> Rejection:
    """An ``invalid:`` rejection."""
    return Rejection(Reason.INVALID, detail)


def blocked(detail: str) -> Rejection:
    """A ``blocked:`` rejection."""
    return Rejection(Reason.BLOCKED, detail)


def restricted(detail: str) -> Rejection:
    """A ``restricted:`` rejection."""
    return Rejection(Reason.RESTRICTED, detail)


def auth_required(detail: str) -> Rejection:
    """An ``auth-required:`` rejection."""
    return Rejection(Reason.AUTH_REQUIRED, detail)


def rate_limited(detail: str) -> Rejection:
    """A ``rate-limited:`` rejection."""
    return Rejection(Reason.RATE_LIMITED, detail)


def error(detail: str) -> Rejection:
    """An ``error:`` rejection (the relay's fault, not the client's)."""
    return Rejection(Reason.ERROR, detail)
