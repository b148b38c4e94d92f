"""The package layering: the pure rule packages never import the layers built on them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RELAY = Path(__file__).resolve().parents[2] / "relay"
PURE = ("core", "mls")
# The service layers (sockets, HTTP, the gateway service, stores, config loading) and
# I/O libraries: a rule module importing any of them would run an import back up.
FORBIDDEN = (
    "relay.app",
    "relay.answers",
    "relay.publisher",
    "relay.peer",
    "relay.policy_setup",
    "relay.server",
    "relay.gateway",
    "relay.http",
    "relay.http_api",
    "relay.http_messages",
    "relay.runner",
    "relay.store",
    "relay.limiter",
    "relay.metrics",
    "relay.config",
    "relay.logs",
    "asyncio",
    "socket",
    "google",
)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, including imports under ``TYPE_CHECKING``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _violations(path: Path) -> list[str]:
    return sorted(
        name
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )


@pytest.mark.parametrize(
    "path",
    sorted(p for package in PURE for p in (RELAY / package).glob("*.py")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_pure_packages_import_nothing_from_the_layers_above(path: Path) -> None:
    """relay/core and relay/mls import neither the service layers nor I/O libraries."""
    assert _violations(path) == []


def test_the_layering_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself catches imports back up, also under TYPE_CHECKING."""
    module = tmp_path / "bad.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import asyncio\n"
        "if TYPE_CHECKING:\n"
        "    from relay.app import Relay\n"
        "from relay import gateway\n"
    )
    assert _violations(module) == ["asyncio", "relay.app", "relay.app.Relay", "relay.gateway"]
