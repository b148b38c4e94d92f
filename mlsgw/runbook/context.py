"""What every runbook command's ``run(ctx)`` receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlsgw.gcp.base import CloudRunApi
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.report import Reporter
from mlsgw.target import Target


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunContext:
    """Clients, ledger, progress, confirmation and dry-run flag for one command run.

    Adapters are built lazily by :attr:`cloud` (a command that needs no cloud never asks for
    credentials). ``confirm`` asks the question and raises :class:`~mlsgw.errors.Refused`
    when it is not confirmed (no terminal and no ``--yes`` included).
    """

    command: str
    target: Target
    cloud: Cloud
    ledger: Ledger
    reporter: Reporter
    run_id: str
    confirm: Callable[[str], None]
    dry_run: bool = False
    health_interval: float = 10.0
    clock: Callable[[], datetime] = field(default=utc_now)

    def look_up_credentials(self) -> None:
        """Look the Google credentials up once for the whole run, within the target's timeout,
        when a project is given and no endpoint override replaces them (otherwise never);
        :class:`~mlsgw.errors.NoCredentials`, with the fix, when there are none."""
        if self.target.project and self.cloud.needs_credentials:
            self.reporter.step("looking up Google credentials")
            self.cloud.credentials(bound=self.target.timeout)

    @property
    def run(self) -> CloudRunApi:
        """The Cloud Run Admin adapter."""
        return self.cloud.run()

    @property
    def service_name(self) -> str:
        """The full Cloud Run service name; :class:`~mlsgw.errors.UsageError` when unset."""
        return self.target.service_name
