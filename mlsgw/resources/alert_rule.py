"""One rule of ``mlsgw alerts`` in Cloud Monitoring: its alert policy and, for a rule that
watches an uptime check (the health-check rule), that check. They are one resource for the
runbook engine, so a plan has one entry per rule and the check is written before the policy
whose query names the check's id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlsgw.errors import UsageError
from mlsgw.gcp.monitoring_config import PolicyState, UptimeState
from mlsgw.monitor.rules import PolicySpec, UptimeSpec
from mlsgw.resources.alert_policy import AlertPolicy
from mlsgw.resources.uptime_check import UptimeCheck

CHECKED = "checked locally (Cloud Monitoring has no dry run for alert policies or uptime checks)"
HOSTLESS = "checked locally, but the uptime check's host is unknown: give --url"


@dataclass(frozen=True)
class RuleState:
    """A rule's resources as read; ``None`` when absent (``uptime`` is always ``None`` for a
    rule without an uptime check)."""

    policy: PolicyState | None
    uptime: UptimeState | None


@dataclass(frozen=True)
class RuleChange:
    """What a rule needs written: the policy as planned (``None``: it already matches) and the
    uptime check (``None``: none needed, or it already matches; an empty ``host``: unknown)."""

    policy: PolicySpec | None
    uptime: UptimeSpec | None


class AlertRuleResources:
    """:class:`~mlsgw.resources.base.Resource` over one rule's alert policy and uptime check.

    ``policy_for`` builds the wanted policy for an uptime check id (``""`` when there is no
    check yet); applying builds it again once the check is written, since a check created
    (or recreated for a new host) by the same write has its id only then."""

    kind = "alert policy"

    def __init__(
        self,
        policy: AlertPolicy,
        uptime: UptimeCheck | None,
        policy_for: Callable[[str], PolicySpec],
    ) -> None:
        self.policy = policy
        self.uptime = uptime
        self.policy_for = policy_for
        self.key = policy.key
        self.name = policy.name

    def read(self) -> RuleState:
        """The labelled policy and, for a rule with one, the labelled uptime check."""
        return RuleState(self.policy.read(), self.uptime.read() if self.uptime else None)

    def summary(self, state: RuleState) -> object:
        """The policy's summary for the ledger; with an uptime check, both under ``policy``
        and ``uptime_check``."""
        policy = self.policy.summary(state.policy)
        if self.uptime is None:
            return policy
        return {"policy": policy, "uptime_check": self.uptime.summary(state.uptime)}

    def validate(self, state: RuleState, change: RuleChange) -> str:
        """Check the change locally (neither kind has a server-side dry run); an uptime check
        whose host is unknown is reported, not refused (``alerts apply`` refuses it)."""
        if change.policy is not None:
            self.policy.validate(state.policy, change.policy)
        if change.uptime is not None and self.uptime is not None:
            if not change.uptime.host:
                return HOSTLESS
            self.uptime.validate(state.uptime, change.uptime)
        return CHECKED

    def apply(self, state: RuleState, change: RuleChange) -> RuleState:
        """Write the uptime check first (create, update, or recreate for a new host), then
        the policy built with that check's id, only when it differs from the one read.
        :class:`UsageError` when the check must be written and its host is unknown."""
        uptime = state.uptime
        if change.uptime is not None and self.uptime is not None:
            if not change.uptime.host:
                raise UsageError(f"{self.name}: no host for its uptime check; give --url")
            uptime = self.uptime.apply(state.uptime, change.uptime)
        wanted = self.policy_for(uptime.check_id if uptime is not None else "")
        if state.policy is not None and state.policy.spec == wanted:
            return RuleState(state.policy, uptime)
        return RuleState(self.policy.apply(state.policy, wanted), uptime)
