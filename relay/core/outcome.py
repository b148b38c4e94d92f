"""What the store did with a published event, and the ``OK`` reply each outcome earns.

The store returns an :class:`Outcome`; the session turns it into ``["OK", id, accepted, msg]``.
Kept apart from the session so stores depend on this small module, not on connection logic.
"""

from __future__ import annotations

from enum import Enum


class Outcome(Enum):
    """What the store did with a published event."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"
    DELETED = "deleted"
    EPHEMERAL = "ephemeral"


_OUTCOME_REPLY: dict[Outcome, tuple[bool, str]] = {
    Outcome.STORED: (True, ""),
    Outcome.EPHEMERAL: (True, ""),
    Outcome.DUPLICATE: (True, "duplicate: already have this event"),
    Outcome.SUPERSEDED: (False, "duplicate: a newer version of this event is stored"),
    Outcome.DELETED: (False, "blocked: this event was deleted by its author"),
}


def outcome_reply(outcome: Outcome) -> tuple[bool, str]:
    """``(accepted, message)`` for the ``OK`` that answers an event the store handled."""
    return _OUTCOME_REPLY[outcome]
