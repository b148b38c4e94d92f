"""The runbook's alert rules: ``config/alerts.yaml`` loaded, validated and rendered into the
specifications of Cloud Monitoring alert policies and uptime checks. Pure: no I/O but reading
the file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import yaml

from mlsgw.errors import UsageError, not_utf8

RULE_LABEL = "mlsgw_rule_id"
"""The user label that marks a policy or uptime check as managed by ``mlsgw alerts``."""
UPTIME_PLACEHOLDER = "(id given when the uptime check is created)"
SEVERITIES = ("critical", "high", "warning", "info")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^(\d+)([smh])$")
_UNIT = {"s": 1, "m": 60, "h": 3600}
DEFAULT_RULES = Path("config/alerts.yaml")
SHIPPED_RULES = Path(__file__).resolve().parents[2] / "config" / "alerts.yaml"


@dataclass(frozen=True)
class Severity:
    """A severity of the runbook: how fast someone must respond, which incident it opens."""

    name: str
    response_time: str
    incident: str


@dataclass(frozen=True)
class UptimeRule:
    """The uptime check a rule watches (HTTPS GET of ``path`` on the service's host)."""

    path: str
    period_s: int
    timeout_s: int


@dataclass(frozen=True)
class AlertRule:
    """One rule of ``config/alerts.yaml`` as written (templates not yet filled)."""

    id: str
    name: str
    severity: Severity
    condition: str
    duration_s: int
    query: str
    command: str
    then: str = ""
    uptime: UptimeRule | None = None


@dataclass(frozen=True)
class UptimeSpec:
    """An uptime check as wanted in Cloud Monitoring."""

    rule_id: str
    display_name: str
    host: str
    path: str
    period_s: int
    timeout_s: int


@dataclass(frozen=True)
class PolicySpec:
    """An alert policy as wanted in Cloud Monitoring (one PromQL condition)."""

    rule_id: str
    display_name: str
    query: str
    duration_s: int
    severity: str
    documentation: str
    enabled: bool = True

    def differences(self, other: PolicySpec) -> list[tuple[str, str, str]]:
        """``(field, self's value, other's value)`` for every field that differs."""
        out = []
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                out.append((name, str(mine), str(theirs)))
        return out


def parse_duration(text: object, where: str) -> int:
    """``30s``, ``5m``, ``1h`` -> seconds; :class:`UsageError` naming ``where`` otherwise."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise UsageError(f"{where}: {text!r} is not a duration like 30s, 5m or 1h")
    return int(match.group(1)) * _UNIT[match.group(2)]


def _text(raw: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: `{key}` must be a non-empty string")
    return " ".join(value.split())


def _severities(raw: object, source: str) -> dict[str, Severity]:
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: `severities` must map {', '.join(SEVERITIES)} to settings")
    out = {}
    for name in SEVERITIES:
        entry = raw.get(name)
        if not isinstance(entry, dict):
            raise UsageError(f"{source}: severities.{name} is missing")
        where = f"{source}: severities.{name}"
        out[name] = Severity(
            name, _text(entry, "response_time", where), _text(entry, "incident", where)
        )
    unknown = set(raw) - set(SEVERITIES)
    if unknown:
        raise UsageError(f"{source}: unknown severities {sorted(unknown)}; use {SEVERITIES}")
    return out


def _uptime(raw: object, where: str) -> UptimeRule | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UsageError(f"{where}.uptime: must be a mapping with path, period, timeout")
    path = _text(raw, "path", f"{where}.uptime")
    if not path.startswith("/"):
        raise UsageError(f"{where}.uptime.path: {path!r} must start with /")
    return UptimeRule(
        path,
        parse_duration(raw.get("period", "1m"), f"{where}.uptime.period"),
        parse_duration(raw.get("timeout", "10s"), f"{where}.uptime.timeout"),
    )


def parse_rules(text: str, source: str) -> tuple[AlertRule, ...]:
    """The rules of an ``alerts.yaml`` text; :class:`UsageError` naming ``source``, the rule
    and the field when anything is malformed."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise UsageError(f"{source}: expected a mapping with `severities` and a list `rules`")
    severities = _severities(doc.get("severities"), source)
    rules: list[AlertRule] = []
    for index, raw in enumerate(doc["rules"]):
        where = f"{source}: rules[{index}]"
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: must be a mapping")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _ID.match(rule_id):
            raise UsageError(f"{where}.id: {rule_id!r} must match {_ID.pattern} (a label value)")
        where = f"{source}: rule {rule_id}"
        severity = raw.get("severity")
        if severity not in severities:
            raise UsageError(f"{where}.severity: {severity!r} is not one of {SEVERITIES}")
        uptime = _uptime(raw.get("uptime"), where)
        query = _text(raw, "query", where)
        if uptime is not None and "${uptime_check_id}" not in query:
            raise UsageError(f"{where}.query: a rule with `uptime` must use ${{uptime_check_id}}")
        if uptime is None and "${uptime_check_id}" in query:
            raise UsageError(f"{where}.query: ${{uptime_check_id}} needs an `uptime` section")
        command = _text(raw, "command", where)
        if not command.startswith("mlsgw "):
            raise UsageError(f"{where}.command: must be an `mlsgw …` command to run")
        rules.append(
            AlertRule(
                id=rule_id,
                name=_text(raw, "name", where),
                severity=severities[str(severity)],
                condition=_text(raw, "condition", where),
                duration_s=parse_duration(raw.get("duration"), f"{where}.duration"),
                query=query,
                command=command,
                then=_text(raw, "then", where, required=False),
                uptime=uptime,
            )
        )
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise UsageError(f"{source}: rule ids must be unique; repeated: {duplicates}")
    if not rules:
        raise UsageError(f"{source}: no rules")
    return tuple(rules)


def rules_path(given: Path | None) -> Path:
    """``given``, else ``config/alerts.yaml`` in the working directory, else the shipped one."""
    if given is not None:
        return given
    return DEFAULT_RULES if DEFAULT_RULES.is_file() else SHIPPED_RULES


def load_rules(path: Path) -> tuple[AlertRule, ...]:
    """Read and validate the rules file (:class:`UsageError` naming the file when it is
    unreadable, not UTF-8 text or malformed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the alert rules {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"the alert rules {path} are {not_utf8(exc)}") from exc
    return parse_rules(text, str(path))


def _fill(template: str, values: Mapping[str, str], where: str) -> str:
    try:
        return Template(template).substitute(values)
    except (KeyError, ValueError) as exc:
        raise UsageError(f"{where}: unknown or malformed placeholder {exc}") from exc


def uptime_spec(rule: AlertRule, host: str) -> UptimeSpec | None:
    """The uptime check ``rule`` needs on ``host`` (``None`` when it has no ``uptime``)."""
    if rule.uptime is None:
        return None
    return UptimeSpec(
        rule.id,
        f"mlsgw {rule.name} ({rule.uptime.path})",
        host,
        rule.uptime.path,
        rule.uptime.period_s,
        rule.uptime.timeout_s,
    )


def policy_spec(rule: AlertRule, values: Mapping[str, str], uptime_check_id: str) -> PolicySpec:
    """The alert policy for ``rule`` with ``values`` (project, region, service) filled in;
    its documentation names the command to run and the severity's response time."""
    filled = {**values, "uptime_check_id": uptime_check_id}
    command = _fill(rule.command, filled, f"rule {rule.id}.command")
    severity = rule.severity
    lines = [
        f"**{severity.name.upper()}** ({severity.incident}): respond within "
        f"{severity.response_time}.",
        "",
        f"Condition: {rule.condition} for {rule.duration_s // 60} min.",
        "",
        f"Run: `{command}`",
    ]
    if rule.then:
        lines += ["", f"Then: {rule.then}."]
    lines += ["", f"Managed by `mlsgw alerts apply` (rule `{rule.id}` in config/alerts.yaml)."]
    return PolicySpec(
        rule_id=rule.id,
        display_name=f"mlsgw: {rule.name}",
        query=_fill(rule.query, filled, f"rule {rule.id}.query"),
        duration_s=rule.duration_s,
        severity=severity.name,
        documentation="\n".join(lines),
    )
