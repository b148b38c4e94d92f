"""Requirement ids (``R-M9``, ``R-A2``, …) are for the specification, never for users: not in
messages (relay NOTICE/OK/CLOSED texts, CLI output and errors), help, or the README."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from mlsgw.cli import app

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT_ID = re.compile(r"\bR-[A-Z]{1,2}\d+[a-z]?\b")


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes in ``tree`` (developer text, not shown to users)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def string_literals() -> Iterator[tuple[str, int, str]]:
    """(file, line, text) of every string literal in relay/ and mlsgw/ that is not a
    module, class or function docstring (f-string parts included)."""
    for package in ("relay", "mlsgw"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            skip = docstrings(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if id(node) not in skip:
                        yield str(path.relative_to(ROOT)), node.lineno, node.value


def test_no_requirement_id_in_any_message_of_the_code() -> None:
    """Strings the code can show (NOTICE/OK/CLOSED, errors, reports) carry no requirement id."""
    offending = [f"{f}:{n}: {t!r}" for f, n, t in string_literals() if REQUIREMENT_ID.search(t)]
    assert offending == []


def test_no_requirement_id_in_the_readme() -> None:
    """The README is written for users."""
    lines = (ROOT / "README.md").read_text().splitlines()
    offending = [f"{n}: {line}" for n, line in enumerate(lines, 1) if REQUIREMENT_ID.search(line)]
    assert offending == []


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the CLI, found from the Typer app itself."""
    paths: list[tuple[str, ...]] = [()]

    def walk(command: object, prefix: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append((*prefix, name))
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "mlsgw")
def test_no_requirement_id_in_help(path: tuple[str, ...]) -> None:
    """`--help` of every command and group is free of requirement ids."""
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0
    assert not REQUIREMENT_ID.search(result.stdout), result.stdout
