"""The runbook engine: one :class:`RunContext` for every command and one way to run an
action (plan → validate → confirm → apply → verify → record) over any kind of resource."""

from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import Action, Trail, execute, refuse

__all__ = ["Action", "RunContext", "Trail", "execute", "refuse"]
