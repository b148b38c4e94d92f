"""The audit ledger (R-O5): one JSON object per line, hash-chained, append-only.

Each line holds ``time``, ``principal``, ``command``, ``args``, ``plan``, ``pre_state``,
``result``, ``run_id``, ``prev`` (sha256 of the previous line's bytes, 64 zeros for the
first) and ``hash`` (sha256 of the line's own canonical JSON without ``hash``). Editing a
line breaks its own hash; recomputing that hash breaks the next line's ``prev``.

Default path: ``$XDG_STATE_HOME/mlsgw/ledger.jsonl`` (``~/.local/state/mlsgw/ledger.jsonl``);
a ``gs://BUCKET/OBJECT`` location keeps it in Cloud Storage. The chain logic here sees only a
:class:`~mlsgw.ledger.base.LedgerStore`, which appends atomically.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsgw.errors import LedgerError, not_utf8
from mlsgw.ledger.base import Head, LedgerStore
from mlsgw.ledger.local import LocalLedgerStore

if TYPE_CHECKING:
    from mlsgw.gcp.clients import Cloud

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


def _split(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line]


class _BadLine(ValueError):
    """A ledger line that is not a UTF-8 JSON object; the message says which it is not."""


def _parse(line: bytes) -> dict[str, Any]:
    """The JSON object on ``line``, or :class:`_BadLine` saying what the line is instead.

    The line is decoded as UTF-8 first: ``json.loads`` on bytes would also take UTF-16 or
    UTF-32, which the ledger never writes.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadLine(not_utf8(exc)) from exc
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise _BadLine(f"not JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise _BadLine(f"not a JSON object (a JSON {_json_kind(record)})")
    return record


def _json_kind(value: object) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


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
    """A hash-chained JSONL ledger in a :class:`~mlsgw.ledger.base.LedgerStore`."""

    def __init__(self, store: LedgerStore | Path) -> None:
        self.store: LedgerStore = LocalLedgerStore(store) if isinstance(store, Path) else store

    @property
    def location(self) -> str:
        """The file path or ``gs://`` URL."""
        return self.store.location

    @classmethod
    def at(cls, location: str | None, environ: Mapping[str, str], cloud: Cloud) -> Ledger:
        """The ledger at ``location`` (a path or ``gs://BUCKET/OBJECT``) or the default path.

        A ``gs://`` ledger uses ``cloud``'s Cloud Storage client (ADC, or anonymous with an
        endpoint override).
        """
        if location and location.startswith("gs://"):
            from mlsgw.ledger.gcs import GcsLedgerStore, split_url

            split_url(location)  # a malformed URL is a usage error before any client is built
            return cls(GcsLedgerStore(cloud.storage, location, timeout=cloud.target.timeout))
        return cls(Path(location).expanduser() if location else default_path(environ))

    def exists(self) -> bool:
        """Whether the ledger has been created (a missing ledger is not an intact one)."""
        return self.store.exists()

    def check_writable(self) -> None:
        """:class:`LedgerError` naming why an append would fail; called before any change."""
        self.store.check_writable()

    def _lines(self) -> list[bytes]:
        return _split(self.store.read())

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
        """Append one record chained on the current last line, atomically, and return it."""
        time = (now or datetime.now(UTC)).isoformat(timespec="seconds")

        def line_for(current: bytes) -> bytes:
            lines = _split(current)
            record: dict[str, Any] = {
                "time": time,
                "principal": principal(),
                "command": command,
                "args": dict(args),
                "plan": plan,
                "pre_state": pre_state,
                "result": dict(result),
                "run_id": run_id,
                "prev": _sha256(lines[-1]) if lines else GENESIS,
            }
            record = json.loads(_canonical(record))
            record["hash"] = _sha256(_canonical(record))
            unterminated = bool(current) and not current.endswith(b"\n")
            return (b"\n" if unterminated else b"") + _canonical(record) + b"\n"

        written: dict[str, Any] = json.loads(self.store.append(line_for))
        return written

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first; :class:`LedgerError` naming the first line that is not
        UTF-8, not JSON or not a JSON object, so no reader ever sees anything but a dict."""
        records = []
        for number, line in enumerate(self._lines(), start=1):
            try:
                records.append(_parse(line))
            except _BadLine as exc:
                raise LedgerError(f"{self.location}:{number}: {exc}") from exc
        return records

    def verify(self) -> Verification:
        """Check every line's own hash and its link to the previous line."""
        problems: list[Problem] = []
        data, head = self.store.read_with_head()
        lines = _split(data)
        prev = GENESIS
        for number, line in enumerate(lines, start=1):
            try:
                record = _parse(line)
            except _BadLine as exc:
                problems.append(Problem(number, str(exc)))
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
        seen = {p.line for p in problems}
        problems.extend(p for p in _head_problems(lines, head) if p.line not in seen)
        return Verification(len(lines), tuple(problems))

    def last_known_good(self, service: str) -> str | None:
        """The newest health-verified revision recorded for ``service`` (full name)."""
        for record in reversed(self.records()):
            args, result = record.get("args"), record.get("result")
            if not isinstance(args, dict) or not isinstance(result, dict):
                continue
            if args.get("service_name") == service and result.get(KNOWN_GOOD_KEY):
                return str(result[KNOWN_GOOD_KEY])
        return None


def _head_problems(lines: list[bytes], head: Head | None) -> list[Problem]:
    """Lines removed at the end leave a valid chain; the head record catches them."""
    if head is None:
        if not lines:
            return []
        return [
            Problem(
                len(lines),
                "no head record beside the ledger: removed last lines cannot be ruled out "
                "(the head is written with every append)",
            )
        ]
    if any(_sha256(line) == head.last for line in lines):
        return []  # lines removed or inserted before it break the chain itself
    missing = head.entries - len(lines)
    removed = f"{missing} line(s) removed from the end" if missing > 0 else "lines replaced"
    return [
        Problem(
            min(head.entries, len(lines) + 1),
            f"the last line the head record names (entry {head.entries}) is gone: {removed}",
        )
    ]
