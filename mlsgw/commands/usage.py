"""The click classes of every ``mlsgw`` command and group: usage errors exit 3, and help
that reads cleanly.

Exit 2 means CRITICAL to Nagios and cron, so a typo (an unknown option, a mistyped
subcommand, a missing value) must exit 3 (UNKNOWN / refused) like every other usage error.
With ``--nagios`` a usage error also prints one plugin status line on stdout, because Nagios
shows stdout only and an empty status says nothing; with ``--json`` it also prints the common
error document on stdout, so a script reading stdout gets one JSON document as for any other
failure.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from mlsgw.errors import UsageError
from mlsgw.output import emit_json, error_document, nagios_unknown
from mlsgw.report import new_run_id

USAGE_EXIT = 3
"""The exit code of every usage error (UNKNOWN to Nagios, refused to the runbook)."""
NAGIOS_FLAG = "--nagios"
JSON_FLAG = "--json"
ARGS_KEY = "mlsgw.args"


def _is_usage_error(exc: Exception) -> bool:
    # Typer vendors its own click, so its exceptions are recognised by shape: a usage error
    # is the one click exits 2 with.
    return getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message")


def _command_name(ctx: Any) -> str:
    """``incident open`` for the context of ``mlsgw incident open`` (``mlsgw`` for the root):
    the name the command's own ``--json`` documents carry."""
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names)) or "mlsgw"


def _as_usage_exit(exc: Exception, args: Sequence[str]) -> None:
    """Turn click's usage exit 2 into 3; with ``--nagios`` print the UNKNOWN status line,
    else with ``--json`` the common error document (status ``unknown`` for a check, ``error``
    otherwise; exit code 3)."""
    if not _is_usage_error(exc):
        return
    exc.exit_code = USAGE_EXIT  # type: ignore[attr-defined]
    message = exc.format_message()  # type: ignore[attr-defined]
    if NAGIOS_FLAG in args:
        typer.echo(nagios_unknown(f"usage: {message}"))
    elif JSON_FLAG in args:
        command = _command_name(getattr(exc, "ctx", None))
        error = UsageError(message)
        emit_json(error_document(command, error, USAGE_EXIT, new_run_id(), None))


def one_line_summary(help_text: str | None) -> str | None:
    """The first paragraph of ``help_text`` on one line (the command list's summary)."""
    if not help_text:
        return None
    first = inspect.cleandoc(help_text).split("\n\n", 1)[0]
    return " ".join(first.split())


def _clean_flags(params: list[Any]) -> list[Any]:
    # Typer shows a "<bool>" type for on/off flags; a flag takes no value, so show none.
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


def reflowed(help_text: str | None) -> str | None:
    """``help_text`` with each paragraph on one line, so the terminal (not the docstring's
    line breaks) decides where lines end; indented blocks keep their lines."""
    if not help_text:
        return help_text
    paragraphs = []
    for paragraph in inspect.cleandoc(help_text).split("\n\n"):
        if paragraph.startswith((" ", "\b")):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(paragraph.split()))
    return "\n\n".join(paragraphs)


class _UsageRules:
    """What commands and groups share: reflowed help, a one-line summary, usage errors
    that exit 3, flags shown without a value placeholder."""

    help: str | None
    short_help: str | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = reflowed(self.help)
        if self.short_help is None:
            self.short_help = one_line_summary(self.help)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Any = None,
        **extra: Any,
    ) -> Any:
        """Parse the arguments; a usage error carries exit code 3."""
        raw = list(args)  # click consumes the list while parsing
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)  # type: ignore[misc]
        except Exception as exc:
            _as_usage_exit(exc, raw)
            raise
        ctx.find_root().meta.setdefault(ARGS_KEY, raw)
        return ctx

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, flags without a value placeholder."""
        return _clean_flags(super().get_params(ctx))  # type: ignore[misc]


class MlsgwCommand(_UsageRules, TyperCommand):
    """A command whose usage errors exit 3 and whose help shows no ``<bool>`` placeholders."""


class MlsgwGroup(_UsageRules, TyperGroup):
    """A group (the root app, ``config``, ``ledger``) with the same rules as its commands:
    a mistyped subcommand exits 3, and the command list shows one-line summaries."""

    def invoke(self, ctx: Any) -> Any:
        """Resolve and run the subcommand; a usage error on the way carries exit code 3."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            _as_usage_exit(exc, ctx.find_root().meta.get(ARGS_KEY, ()))
            raise
