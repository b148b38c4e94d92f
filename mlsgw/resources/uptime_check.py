"""A Cloud Monitoring uptime check managed by ``mlsgw alerts``, found by its
``mlsgw_rule_id`` label."""

from __future__ import annotations

import dataclasses

from mlsgw.gcp.monitoring_config import MonitoringConfigApi, UptimeState
from mlsgw.monitor.rules import UptimeSpec


class UptimeCheck:
    """:class:`~mlsgw.resources.base.Resource` over the uptime check labelled ``rule_id``;
    the state is ``None`` when it does not exist, the change the whole wanted spec."""

    kind = "uptime check"

    def __init__(self, api: MonitoringConfigApi, project: str, rule_id: str) -> None:
        self.api = api
        self.project = project
        self.rule_id = rule_id
        self.key = f"uptime_check:{rule_id}"
        self.name = f"uptime check {rule_id}"

    def read(self) -> UptimeState | None:
        """The labelled uptime check, or ``None``."""
        found = [
            c for c in self.api.list_uptime_checks(self.project) if c.spec.rule_id == self.rule_id
        ]
        return found[0] if found else None

    def summary(self, state: UptimeState | None) -> object:
        """Name and spec for the ledger; ``None`` when absent."""
        return None if state is None else {"name": state.name, **dataclasses.asdict(state.spec)}

    def validate(self, state: UptimeState | None, change: UptimeSpec) -> str:
        """Uptime checks have no server-side dry run; the host and period are checked here."""
        from mlsgw.errors import UsageError

        if not change.host:
            raise UsageError(f"{self.name}: no host to check; give --url or a service with a URL")
        if change.period_s not in (60, 300, 600, 900):
            raise UsageError(f"{self.name}: period must be 1, 5, 10 or 15 minutes")
        return "checked locally (Cloud Monitoring has no dry run for uptime checks)"

    def apply(self, state: UptimeState | None, change: UptimeSpec) -> UptimeState:
        """Create it; update it in place; or, when the host changed (Cloud Monitoring cannot
        change it in place), delete it and create it again."""
        if state is None:
            return self.api.create_uptime_check(self.project, change)
        if state.spec.host != change.host:
            self.api.delete_uptime_check(state)
            return self.api.create_uptime_check(self.project, change)
        return self.api.update_uptime_check(state, change)
