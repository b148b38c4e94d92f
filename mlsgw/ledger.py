"""The audit ledger (R-O5): one JSON object per line, hash-chained, append-only.

Each line holds ``time``, ``principal``, ``command``, ``args``, ``plan``, ``pre_state``,
``result``, ``run_id``, ``prev`` (sha256 of the previous line's bytes, 64 zeros for the
first) and ``hash`` (sha256 of the line's own canonical JSON without ``hash``). Editing a
line breaks its own hash; recomputing that hash breaks the next line's ``prev``.

Default path: ``$XDG_STATE_HOME/mlsgw/ledger.jsonl`` (``~/.local/state/mlsgw/ledger.jsonl``).
Only local files are supported; a ``gs://`` ledger is not implemented yet.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlsgw.errors import LedgerError, UsageError

GENESIS = "0" * 64
# Actions whose successful, health-verified result names a known-good revision.
KNOWN_GOOD_KEY = "known_good_revision"


def default_path(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/mlsgw/ledger.jsonl`` or ``~/.local/state/mlsgw/ledger.jsonl``."""
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mlsgw" / "ledger.jsonl"


def principal() -> str:
    """Who runs the command: ``user@host`` (the Google identity is in the cloud audit logs)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Problem:
    """A place where the chain is broken."""

    line: int
    reason: str


@dataclass(frozen=True)
class Verification:
    """The result of :meth:`Ledger.verify`."""

    entries: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """The chain is intact."""
        return not self.problems


class Ledger:
    """A local hash-chained JSONL ledger."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def at(cls, location: str | None, environ: Mapping[str, str]) -> Ledger:
        """The ledger at ``location`` (a local path) or the default path."""
        if location and location.startswith("gs://"):
            raise UsageError(
                f"ledger {location}: gs:// ledgers are not supported yet; use a local path"
            )
        return cls(Path(location).expanduser() if location else default_path(environ))

    def _lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        return [line for line in data.split(b"\n") if line]

    def append(
        self,
        *,
        command: str,
        run_id: str,
        args: Mapping[str, Any],
        plan: Any,
        pre_state: Any,
        result: Mapping[str, Any],
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Append one record (under an exclusive lock) and return it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.seek(0)
                lines = [line for line in handle.read().split(b"\n") if line]
                prev = _sha256(lines[-1]) if lines else GENESIS
                record: dict[str, Any] = {
                    "time": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
                    "principal": principal(),
                    "command": command,
                    "args": dict(args),
                    "plan": plan,
                    "pre_state": pre_state,
                    "result": dict(result),
                    "run_id": run_id,
                    "prev": prev,
                }
                record = json.loads(_canonical(record))
                record["hash"] = _sha256(_canonical(record))
                handle.seek(0, os.SEEK_END)
                handle.write(_canonical(record) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise LedgerError(f"cannot append to the ledger {self.path}: {exc}") from exc
        return record

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first; :class:`LedgerError` on an unparsable line."""
        records = []
        for number, line in enumerate(self._lines(), start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LedgerError(f"{self.path}:{number}: not JSON ({exc})") from exc
        return records

    def verify(self) -> Verification:
        """Check every line's own hash and its link to the previous line."""
        problems: list[Problem] = []
        lines = self._lines()
        prev = GENESIS
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError:
                problems.append(Problem(number, "not a JSON object"))
                prev = _sha256(line)
                continue
            claimed = record.pop("hash", None)
            if claimed != _sha256(_canonical(record)):
                problems.append(Problem(number, "content does not match its hash (line edited)"))
            if record.get("prev") != prev:
                problems.append(
                    Problem(
                        number,
                        "does not follow the previous line (a line before it was edited, "
                        "removed or inserted)",
                    )
                )
            prev = _sha256(line)
        return Verification(len(lines), tuple(problems))

    def last_known_good(self, service: str) -> str | None:
        """The newest health-verified revision recorded for ``service`` (full name)."""
        for record in reversed(self.records()):
            result = record.get("result") or {}
            if record.get("args", {}).get("service_name") == service and result.get(KNOWN_GOOD_KEY):
                return str(result[KNOWN_GOOD_KEY])
        return None
