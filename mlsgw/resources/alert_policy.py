"""A Cloud Monitoring alert policy managed by ``mlsgw alerts``, found by its
``mlsgw_rule_id`` label (policies without the label are never read as ours, never written)."""

from __future__ import annotations

import dataclasses

from mlsgw.gcp.monitoring_config import MonitoringConfigApi, PolicyState
from mlsgw.monitor.rules import PolicySpec


def policy_summary(state: PolicyState | None) -> object:
    """The ledger's view of a policy: ``None`` when absent."""
    if state is None:
        return None
    return {"name": state.name, **dataclasses.asdict(state.spec)}


class AlertPolicy:
    """:class:`~mlsgw.resources.base.Resource` over the policy labelled ``rule_id``.

    The state is ``None`` when no such policy exists; the change is the whole wanted
    :class:`PolicySpec`."""

    kind = "alert policy"

    def __init__(self, api: MonitoringConfigApi, project: str, rule_id: str) -> None:
        self.api = api
        self.project = project
        self.rule_id = rule_id
        self.key = f"alert_policy:{rule_id}"
        self.name = f"alert policy {rule_id}"

    def read(self) -> PolicyState | None:
        """The labelled policy (the first one, if someone duplicated it by hand)."""
        found = [p for p in self.api.list_policies(self.project) if p.spec.rule_id == self.rule_id]
        return found[0] if found else None

    def summary(self, state: PolicyState | None) -> object:
        """See :func:`policy_summary`."""
        return policy_summary(state)

    def validate(self, state: PolicyState | None, change: PolicySpec) -> str:
        """Alert policies have no server-side dry run: the policy is checked locally."""
        if not change.query.strip() or change.duration_s <= 0:
            from mlsgw.errors import UsageError

            raise UsageError(f"{self.name}: a PromQL query and a positive duration are needed")
        return "checked locally (Cloud Monitoring has no dry run for alert policies)"

    def apply(self, state: PolicyState | None, change: PolicySpec) -> PolicyState:
        """Create the policy, or update it guarded by the last mutation time read."""
        if state is None:
            return self.api.create_policy(self.project, change)
        return self.api.update_policy(state, change)
