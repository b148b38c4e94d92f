"""The playbook schema: a YAML file of ordered steps, validated when it is loaded.

A playbook::

    name: morning-health-check          # = the file name without .yaml
    title: Morning health check
    description: What it is for and when to run it.
    steps:
      - note: Run at 09:00 UTC.
      - run: mlsgw healthcheck
        name: Service health
        on_failure: Open an incident with `mlsgw incident open --sev 2 …`.
      - check: The dashboard's error rate is below 1 %.
      - ask: Which revision shows the problem?
        id: revision
        default: latest
      - run: mlsgw rollback --to {revision}

Each step has exactly one of ``run`` (an ``mlsgw`` command line, checked against the CLI:
the command must exist and its options must parse), ``check`` (a checklist item the operator
confirms), ``ask`` (a question whose answer later ``run`` lines use as ``{id}``) and ``note``
(shown and recorded). Optional: ``name``, ``on_failure`` (what to do next when the step
fails), ``continue_on_failure`` (a diagnostic step whose failure is reported but does not stop
the run), and for ``ask`` its ``id`` (required) and ``default``. Errors name the file, the
step (1-based) and the field.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from mlsgw.errors import not_utf8
from mlsgw.playbooks.catalog import CatalogError, CommandCatalog, CommandLine

NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
ANSWER_ID = re.compile(r"[a-z_][a-z0-9_]*\Z")
TOP_FIELDS = {"name": str, "title": str, "description": str, "steps": list}
TOP_REQUIRED = ("name", "title", "steps")
STEP_FIELDS: dict[str, type] = {
    "run": str,
    "check": str,
    "ask": str,
    "note": str,
    "name": str,
    "on_failure": str,
    "continue_on_failure": bool,
    "id": str,
    "default": str,
}


class StepKind(StrEnum):
    """What a step does."""

    RUN = "run"
    CHECK = "check"
    ASK = "ask"
    NOTE = "note"


@dataclass(frozen=True)
class Step:
    """One validated step."""

    number: int
    """1-based position in the playbook."""
    kind: StepKind
    text: str
    """The command line, checklist item, question or note."""
    name: str
    on_failure: str | None = None
    continue_on_failure: bool = False
    answer_id: str | None = None
    default: str | None = None
    command: CommandLine | None = None
    """For ``run``: the command it names."""


@dataclass(frozen=True)
class Playbook:
    """A validated playbook."""

    name: str
    title: str
    description: str
    steps: tuple[Step, ...]
    path: Path


class PlaybookError(ValueError):
    """A playbook that does not match the schema: names the file, the step and the field."""

    def __init__(self, path: Path, message: str, step: int | None = None, field: str | None = None):
        where = str(path)
        if step is not None:
            where += f": step {step}"
        if field is not None:
            where += f": {field}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.step = step
        self.field = field


def _type_name(tp: type) -> str:
    return {str: "a string", bool: "true or false", list: "a list"}.get(tp, tp.__name__)


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def _step(path: Path, number: int, raw: object, catalog: CommandCatalog, answers: set[str]) -> Step:
    if not isinstance(raw, Mapping):
        raise PlaybookError(path, "must be a mapping with one of run, check, ask, note", number)
    for key, value in raw.items():
        if key not in STEP_FIELDS:
            raise PlaybookError(
                path, f"unknown field (known: {', '.join(STEP_FIELDS)})", number, str(key)
            )
        if not isinstance(value, STEP_FIELDS[key]):
            raise PlaybookError(
                path, f"must be {_type_name(STEP_FIELDS[key])}, got {value!r}", number, key
            )
    kinds = [k for k in StepKind if k.value in raw]
    if len(kinds) != 1:
        found = ", ".join(k.value for k in kinds) or "none"
        raise PlaybookError(
            path, f"needs exactly one of run, check, ask, note (found: {found})", number
        )
    kind = kinds[0]
    text = str(raw[kind.value]).strip()
    if not text:
        raise PlaybookError(path, "must not be empty", number, kind.value)
    answer_id = raw.get("id")
    if kind is StepKind.ASK:
        if answer_id is None:
            raise PlaybookError(path, "an ask step needs an id for its answer", number, "id")
        if not ANSWER_ID.match(answer_id):
            raise PlaybookError(path, "must be lower_snake_case", number, "id")
    else:
        for only_ask in ("id", "default"):
            if only_ask in raw:
                raise PlaybookError(path, "only an ask step takes it", number, only_ask)
    command = None
    if kind is StepKind.RUN:
        unknown = _placeholders(text) - answers
        if unknown:
            raise PlaybookError(
                path,
                f"uses {{{sorted(unknown)[0]}}}, which no earlier ask step answers",
                number,
                "run",
            )
        try:
            command = catalog.resolve(text)
        except CatalogError as exc:
            raise PlaybookError(path, str(exc), number, "run") from None
    name = str(raw.get("name") or (command.name if command else text.splitlines()[0][:60]))
    return Step(
        number=number,
        kind=kind,
        text=text,
        name=name,
        on_failure=raw.get("on_failure"),
        continue_on_failure=bool(raw.get("continue_on_failure", False)),
        answer_id=answer_id,
        default=raw.get("default"),
        command=command,
    )


def parse_playbook(path: Path, data: Any, catalog: CommandCatalog) -> Playbook:
    """Validate ``data`` (the YAML document of ``path``); :class:`PlaybookError` otherwise."""
    if not isinstance(data, Mapping):
        raise PlaybookError(path, "must be a mapping with name, title and steps")
    for key, value in data.items():
        if key not in TOP_FIELDS:
            raise PlaybookError(path, f"unknown field (known: {', '.join(TOP_FIELDS)})", None, key)
        if not isinstance(value, TOP_FIELDS[key]):
            raise PlaybookError(path, f"must be {_type_name(TOP_FIELDS[key])}", None, key)
    for key in TOP_REQUIRED:
        if key not in data:
            raise PlaybookError(path, "is required", None, key)
    if not NAME.match(data["name"]) or data["name"] != path.stem:
        raise PlaybookError(
            path,
            f"must be lower-case-with-dashes and equal the file name {path.stem!r}",
            None,
            "name",
        )
    if not data["steps"]:
        raise PlaybookError(path, "needs at least one step", None, "steps")
    answers: set[str] = set()
    steps = []
    for number, raw in enumerate(data["steps"], start=1):
        step = _step(path, number, raw, catalog, answers)
        if step.answer_id is not None:
            if step.answer_id in answers:
                raise PlaybookError(path, "is already used by an earlier ask", number, "id")
            answers.add(step.answer_id)
        steps.append(step)
    return Playbook(
        name=data["name"],
        title=data["title"],
        description=str(data.get("description", "")).strip(),
        steps=tuple(steps),
        path=path,
    )


def load_playbook(path: Path, catalog: CommandCatalog) -> Playbook:
    """Read and validate one playbook file; :class:`PlaybookError` naming the file when it
    cannot be read, is not UTF-8 text, is not YAML or does not match the schema."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlaybookError(path, f"cannot be read: {exc}") from None
    except UnicodeDecodeError as exc:
        raise PlaybookError(path, f"is {not_utf8(exc)}") from None
    except yaml.YAMLError as exc:
        raise PlaybookError(path, f"is not valid YAML: {exc}") from None
    return parse_playbook(path, data, catalog)


def load_all(
    directory: Path, catalog: CommandCatalog
) -> tuple[list[Playbook], list[PlaybookError]]:
    """Every ``*.yaml`` playbook of ``directory`` by name, and the errors of invalid ones."""
    if not directory.is_dir():
        raise PlaybookError(directory, "is not a directory of playbooks")
    valid: list[Playbook] = []
    invalid: list[PlaybookError] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            valid.append(load_playbook(path, catalog))
        except PlaybookError as exc:
            invalid.append(exc)
    return valid, invalid
