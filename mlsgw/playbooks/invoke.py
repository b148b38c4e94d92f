"""Running one ``mlsgw …`` command line in this process, as the CLI would, capturing its
``--json`` document.

In-process rather than a subprocess: the command goes through exactly the parser the
playbook was validated against, in the same environment (target, ledger, credentials),
without paying Python's and the Google libraries' start-up for every step. Each command
still runs through its own ``run_command`` (its own run id, confirmation and ledger line).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from typer.core import TyperGroup

from mlsgw.playbooks.catalog import message_of


@dataclass(frozen=True)
class Invocation:
    """How one command ended."""

    exit_code: int
    document: dict[str, Any] = field(default_factory=dict)
    """Its ``--json`` document (empty when it printed none)."""
    output: str = ""
    """What it printed on stdout."""

    @property
    def summary(self) -> str:
        """The document's summary, else its last line of output."""
        summary = self.document.get("summary")
        if isinstance(summary, str):
            return summary
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit {self.exit_code}"


def invoke(root: TyperGroup, argv: Sequence[str]) -> Invocation:
    """Run ``mlsgw argv`` in-process; stdout is captured, stderr (prompts) is left alone."""
    out = io.StringIO()
    code: int
    with contextlib.redirect_stdout(out):
        try:
            result = root.main(args=list(argv), prog_name="mlsgw", standalone_mode=False)
            code = result if isinstance(result, int) else 0
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            code = 3
            print("aborted")
        except typer.TyperException as exc:  # a usage error: the CLI's convention is exit 3
            code = int(getattr(exc, "exit_code", 3))
            print(message_of(exc))
    text = out.getvalue()
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    return Invocation(code, document if isinstance(document, dict) else {}, text)
