"""The interface every kind of resource implements for the runbook engine.

A :class:`Resource` is one thing an action changes: a Cloud Run service, a service's IAM
policy, a Firestore database, a Storage object, a Monitoring alert policy. The engine
(:mod:`mlsgw.runbook.engine`) only ever calls these four methods, so confirmation, dry run,
etag-guarded retries and the ledger work the same for every kind.

A :class:`Mutation` says what an action wants of one resource: given the state as read, the
change to make, or ``None`` when the resource already looks as wanted (that is what makes
actions idempotent: a second run changes nothing and says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from mlsgw.report import Change

StateT = TypeVar("StateT")
ChangeT = TypeVar("ChangeT")
ChangeT_contra = TypeVar("ChangeT_contra", contravariant=True)


class Resource(Protocol[StateT, ChangeT_contra]):
    """One resource: read it, summarise it, validate a change, apply a change."""

    @property
    def kind(self) -> str:
        """What it is, for people: ``Cloud Run service``, ``IAM policy``, ..."""
        ...

    @property
    def name(self) -> str:
        """Its full resource name (plan lines, ledger)."""
        ...

    @property
    def key(self) -> str:
        """Its key in the ledger's pre- and post-state (``service``, ``iam_policy``)."""
        ...

    def read(self) -> StateT:
        """The current state, including whatever guards the next write (etag, generation)."""
        ...

    def summary(self, state: StateT) -> object:
        """The state as JSON-able data for the ledger (pre- and post-state)."""
        ...

    def validate(self, state: StateT, change: ChangeT_contra) -> str:
        """Check ``change`` without applying it (server-side where the API can); return how
        it was checked. Raises an :class:`~mlsgw.errors.MlsgwError` when it would fail."""
        ...

    def apply(self, state: StateT, change: ChangeT_contra) -> StateT:
        """Apply ``change`` guarded by what ``state`` was read with; the state afterwards.

        Raises :class:`~mlsgw.errors.Conflict` when the resource changed since ``state`` was
        read; the engine then reads it again and recomputes the change.
        """
        ...


@dataclass(frozen=True)
class Mutation(Generic[StateT, ChangeT]):
    """What an action wants of one resource."""

    label: str
    """The step's name in the report (``update``, ``remove public invoker``)."""
    resource: Resource[StateT, ChangeT]
    compute: Callable[[StateT], ChangeT | None]
    """The change for the state as read; ``None`` when nothing needs to change. Called again
    on fresh state after a concurrent change."""
    describe: Callable[[StateT, ChangeT], tuple[Change, ...]]
    """The plan lines for applying ``change`` to ``state``."""
    applied: Callable[[StateT], str] | None = None
    """The step's detail once applied, from the state afterwards."""
