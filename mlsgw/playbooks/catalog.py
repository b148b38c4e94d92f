"""The ``mlsgw`` commands a playbook may run, read from the CLI itself (so a playbook naming a
command that does not exist, or an option it does not take, fails when it is loaded)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class CommandLine:
    """A ``run:`` line resolved against the CLI."""

    argv: tuple[str, ...]
    """The arguments after ``mlsgw``."""
    path: tuple[str, ...]
    """The command's name (``("incident", "open")``)."""
    flags: frozenset[str]
    """Every option the command takes (``--dry-run``, ``--yes``, ``--project``, ...)."""

    def takes(self, flag: str) -> bool:
        """Whether the command has the option ``flag``."""
        return flag in self.flags

    @property
    def name(self) -> str:
        """``incident open``."""
        return " ".join(self.path)


class CatalogError(ValueError):
    """A ``run:`` line that does not name a command of the CLI, or does not parse."""


def _flags(command: Any) -> set[str]:
    return {opt for p in command.params for opt in getattr(p, "opts", ())}


class CommandCatalog:
    """Resolves and checks ``mlsgw …`` lines against the Typer app's command group."""

    def __init__(self, root: TyperGroup) -> None:
        self.root = root

    def names(self) -> list[str]:
        """Every command path, e.g. ``healthcheck``, ``incident open``."""
        found: list[str] = []

        def walk(group: TyperGroup, prefix: tuple[str, ...]) -> None:
            for name, command in sorted(group.commands.items()):
                if isinstance(command, TyperGroup):
                    if command.invoke_without_command:
                        found.append(" ".join((*prefix, name)))
                    walk(command, (*prefix, name))
                else:
                    found.append(" ".join((*prefix, name)))

        walk(self.root, ())
        return found

    def resolve(self, line: str) -> CommandLine:
        """``line`` (``mlsgw incident open --sev 1 …``) as a :class:`CommandLine`.

        :class:`CatalogError` when it does not start with ``mlsgw``, names no command of the
        CLI, or its options do not parse (unknown option, missing value or required option).
        ``{placeholder}`` values parse as plain strings.
        """
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise CatalogError(f"cannot split {line!r}: {exc}") from None
        if not words or words[0] != "mlsgw":
            raise CatalogError(f"must start with `mlsgw`, got {line!r}")
        args = words[1:]
        group: TyperGroup = self.root
        path: list[str] = []
        command: Any
        while True:
            if (not args or args[0].startswith("-")) and path and group.invoke_without_command:
                command = group  # a group that is also a command (``mlsgw backup``)
                break
            if not args or args[0].startswith("-"):
                raise CatalogError(
                    f"`mlsgw {' '.join(path)}` needs a command; one of: "
                    + ", ".join(sorted(group.commands))
                )
            name, args = args[0], args[1:]
            command = group.commands.get(name)
            if command is None:
                where = f"mlsgw {' '.join(path)}".strip()
                raise CatalogError(
                    f"`{where} {name}` is not a command of this mlsgw; known: "
                    + ", ".join(sorted(group.commands))
                )
            path.append(name)
            if isinstance(command, TyperGroup):
                group = command
                continue
            break
        self._parse(command, path, args)
        flags = frozenset(_flags(command))
        return CommandLine(argv=tuple(words[1:]), path=tuple(path), flags=flags)

    @staticmethod
    def _parse(command: Any, path: list[str], args: list[str]) -> None:
        try:
            with command.make_context(" ".join(["mlsgw", *path]), list(args)):
                pass
        except typer.Exit:
            pass  # --help and the like: they parse
        except typer.TyperException as exc:  # the parser's usage errors
            raise CatalogError(f"`mlsgw {' '.join(path)}`: {message_of(exc)}") from None


def message_of(exc: Exception) -> str:
    """A parser error's message (``format_message`` where it has one)."""
    format_message = getattr(exc, "format_message", None)
    return str(format_message()) if callable(format_message) else str(exc)
