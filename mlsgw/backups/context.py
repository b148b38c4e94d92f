"""What the backup and restore runbooks need from the command that runs them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.report import Reporter
from mlsgw.target import Target


class BackupContext(Protocol):
    """Clients, ledger, progress, confirmation, dry-run flag and clock of one run."""

    @property
    def target(self) -> Target: ...

    @property
    def cloud(self) -> Cloud: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def reporter(self) -> Reporter: ...

    @property
    def run_id(self) -> str: ...

    @property
    def confirm(self) -> Callable[[str], None]:
        """Asks; raises :class:`~mlsgw.errors.Refused` when not confirmed."""
        ...

    @property
    def dry_run(self) -> bool: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...
