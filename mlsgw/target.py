"""What the runbook commands act on (R-O1): one field per ``[ops]`` setting, resolved once.

Every field of :class:`~relay.settings.OpsSettings` is a target field: the ``--flag``, the
``MLSGW_<NAME>`` variable and the ``[ops]`` key all derive from the field's name, so a new
``[ops]`` setting is a flag and a variable without further code. Precedence, highest first:
the command's flag, ``MLSGW_<NAME>`` (``MLSGW_GCP_ENDPOINT`` for ``endpoint``), ``[ops]`` in
the config file (or ``MLSGW_OPS__<NAME>``), then gcloud's own defaults for the project
(``CLOUDSDK_CORE_PROJECT``, ``GOOGLE_CLOUD_PROJECT``, the active configuration's
``core/project``) and the region (``CLOUDSDK_RUN_REGION``, ``run/region``). The resolved
:class:`Target` names where each value came from.

Only ``[ops]`` is read, and only ``MLSGW_OPS__*`` of the section overrides: a bad ``[auth]``
key or a stray ``MLSGW_AUTH__…`` variable never blocks a rollback. This module is the only
place the runbook reads the environment for its target.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsgw.errors import UsageError
from mlsgw.gcloud_config import gcloud_property
from mlsgw.urls import has_blank_or_control, port_of, split
from relay.config import parse_duration, resolve_config_path
from relay.settings import OPS_BOUNDS, OpsSettings

OPS_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(OpsSettings))
"""Every target field, in ``[ops]`` order."""
_ENV_EXCEPTIONS = {"endpoint": "MLSGW_GCP_ENDPOINT"}
ENV_NAMES: dict[str, str] = {
    name: _ENV_EXCEPTIONS.get(name, f"MLSGW_{name.upper()}") for name in OPS_FIELDS
}
"""Field -> its environment variable."""
FLAG_NAMES: dict[str, str] = {"backup_bucket": "--bucket", "incident_webhook": "--webhook"}
"""Flags whose name is not the field's (``--bucket`` for ``[ops] backup_bucket``)."""


def flag_name(field_name: str) -> str:
    """The command-line flag of a target field."""
    return FLAG_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


SECRET_FIELDS = frozenset(
    f.name for f in dataclasses.fields(OpsSettings) if f.metadata.get("secret")
)
FALLBACKS: dict[str, tuple[tuple[str, str], ...]] = {
    "project": (
        ("env", "CLOUDSDK_CORE_PROJECT"),
        ("env", "GOOGLE_CLOUD_PROJECT"),
        ("gcloud", "core/project"),
    ),
    "region": (("env", "CLOUDSDK_RUN_REGION"), ("gcloud", "run/region")),
}
"""gcloud's defaults, consulted in this order after flags, MLSGW_* and [ops]."""


@dataclass(frozen=True)
class Target(OpsSettings):
    """The resolved target of a runbook command: every ``[ops]`` field, any of them unset."""

    sources: Mapping[str, str] = field(default_factory=dict)
    """Field -> where its value came from (``--project``, ``env MLSGW_REGION``, ...)."""
    warnings: tuple[str, ...] = ()
    """Things the operator should know about the configuration (unknown ``[ops]`` keys)."""

    @property
    def has_service(self) -> bool:
        """Project, region and service are all known."""
        return bool(self.project and self.region and self.service)

    @property
    def service_name(self) -> str:
        """``projects/P/locations/R/services/S``; :class:`UsageError` when incomplete."""
        missing = [n for n in ("project", "region", "service") if not getattr(self, n)]
        if missing:
            flags = ", ".join(f"--{n}" for n in missing)
            envs = ", ".join(ENV_NAMES[n] for n in missing)
            raise UsageError(
                f"no Cloud Run service given: set {flags} (or {envs}, or [ops] in the config)"
            )
        return f"projects/{self.project}/locations/{self.region}/services/{self.service}"

    def source_of(self, name: str) -> str:
        """Where ``name`` came from, ``default`` when nothing set it."""
        return self.sources.get(name, "default")

    def redacted(self) -> dict[str, object]:
        """Every field for reports and the ledger, secrets replaced, plus ``sources``."""
        out: dict[str, object] = {}
        for name in OPS_FIELDS:
            value = getattr(self, name)
            out[name] = "***" if name in SECRET_FIELDS and value else value
        out["sources"] = dict(self.sources)
        return out


@dataclass(frozen=True)
class OpsSection:
    """``[ops]`` as read on its own: the values set, where each came from, and warnings."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    warnings: tuple[str, ...]
    path: Path | None


def _field_types() -> dict[str, tuple[Any, Mapping[str, Any]]]:
    hints = typing.get_type_hints(OpsSettings)
    return {f.name: (hints[f.name], f.metadata) for f in dataclasses.fields(OpsSettings)}


def coerce(name: str, raw: object, *, from_env: bool = False) -> object:
    """``raw`` as the type of ``[ops] name``; :class:`ValueError` naming what was expected.

    From the environment every value is a string: numbers, booleans and comma-separated lists
    are parsed from it.
    """
    tp, meta = _field_types()[name]
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        if raw is None:
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if meta.get("duration"):
        try:
            return check_bounds(name, parse_duration(raw))
        except ValueError:
            raise ValueError(
                f"a duration{_range_text(name)} (seconds or a string like '30s')"
            ) from None
    if typing.get_origin(tp) is tuple:
        if from_env and isinstance(raw, str):
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            return tuple(raw)
        raise ValueError("an array of strings")
    if tp is bool:
        if from_env and isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on"):
            return True
        if from_env and isinstance(raw, str) and raw.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(raw, bool):
            return raw
        raise ValueError("a boolean")
    if tp in (int, float):
        try:
            number = float(raw) if from_env and isinstance(raw, str) else raw
        except ValueError:
            number = None
        if isinstance(number, int | float) and not isinstance(number, bool) and number >= 0:
            if tp is int and float(number) != int(number):
                raise ValueError("a whole number")
            return check_bounds(name, tp(number))
        raise ValueError(
            f"a number{_range_text(name)}" if name in OPS_BOUNDS else "a non-negative number"
        )
    if isinstance(raw, str):
        return raw
    raise ValueError("a string")


_UNITS = {"timeout": " s", "rpo_hours": " h"}


def _range_text(name: str) -> str:
    """`` from 0.1 s to 3600 s`` for a bounded field, else nothing."""
    if name not in OPS_BOUNDS:
        return ""
    least, most = OPS_BOUNDS[name]
    unit = _UNITS.get(name, "")
    return f" from {least:g}{unit} to {most:g}{unit}"


def check_bounds(name: str, value: float) -> float:
    """``value`` when it lies within ``OPS_BOUNDS[name]`` (NaN never does), else
    :class:`ValueError` saying the range; a field without bounds passes unchanged."""
    if name in OPS_BOUNDS:
        least, most = OPS_BOUNDS[name]
        if not least <= value <= most:
            raise ValueError(f"a number{_range_text(name)}")
    return value


def load_ops(config: Path | None, environ: Mapping[str, str]) -> OpsSection:
    """Read ``[ops]`` alone from the config file, then ``MLSGW_OPS__<KEY>``.

    Other sections and other ``MLSGW_<SECTION>__`` variables are not looked at. A file named
    by ``--config`` or ``MLSGW_CONFIG`` that cannot be read or is not TOML, or a known key
    with a value of the wrong type, is a :class:`UsageError` (guessing a target is worse than
    stopping); an unknown ``[ops]`` key is a warning.
    """
    path = resolve_config_path(config, environ)
    table: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"config file {path} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the config file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
        ops = data.get("ops", {})
        if not isinstance(ops, dict):
            raise UsageError(f"{path}: [ops] must be a table")
        table = ops
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    problems: list[str] = []
    for key, raw in table.items():
        if key not in OPS_FIELDS:
            warnings.append(f"{path}: unknown key ops.{key} ignored")
            continue
        try:
            values[key] = coerce(key, raw)
        except ValueError as exc:
            problems.append(f"{path}: ops.{key}: expected {exc}, got {raw!r}")
            continue
        sources[key] = f"[ops] in {path}"
    for name, raw in sorted(environ.items()):
        if not name.startswith("MLSGW_OPS__"):
            continue
        key = name.removeprefix("MLSGW_OPS__").lower()
        if key not in OPS_FIELDS:
            warnings.append(f"environment: {name}: unknown [ops] key ignored")
            continue
        try:
            values[key] = coerce(key, raw, from_env=True)
        except ValueError as exc:
            problems.append(f"environment: {name}: expected {exc}, got {raw!r}")
            continue
        sources[key] = f"env {name}"
    if problems:
        raise UsageError("invalid [ops] configuration: " + "; ".join(problems))
    return OpsSection(values, sources, tuple(warnings), path)


def _fallback(name: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    for kind, key in FALLBACKS.get(name, ()):
        if kind == "env" and env.get(key):
            return env[key], f"env {key}"
        if kind == "gcloud":
            section, _, prop = key.partition("/")
            found = gcloud_property(env, section, prop)
            if found is not None:
                return found.value, found.source
    return None


def resolve_target(
    *,
    config: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
    **more_flags: object,
) -> Target:
    """Merge flags over ``MLSGW_*`` over ``[ops]`` over gcloud's defaults, with sources.

    ``flags`` (and keyword arguments) are target fields by name (``None`` = not given); an
    unknown name is a bug (:class:`TypeError`); a bad value is a :class:`UsageError`.
    """
    env = dict(os.environ) if environ is None else dict(environ)
    flags = {**(flags or {}), **more_flags}
    unknown = set(flags) - set(OPS_FIELDS)
    if unknown:
        raise TypeError(f"unknown target fields: {sorted(unknown)}")
    ops = load_ops(config, env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in OPS_FIELDS:
        flag = flags.get(name)
        env_name = ENV_NAMES[name]
        if flag is not None and flag != "":
            values[name], sources[name] = flag, flag_name(name)
        elif env.get(env_name):
            try:
                values[name] = coerce(name, env[env_name], from_env=True)
            except ValueError as exc:
                raise UsageError(f"{env_name}: expected {exc}, got {env[env_name]!r}") from None
            sources[name] = f"env {env_name}"
        elif name in ops.values and ops.values[name] not in (None, ""):
            values[name], sources[name] = ops.values[name], ops.sources[name]
        elif (found := _fallback(name, env)) is not None:
            values[name], sources[name] = found
    _check_values(values, sources)
    return Target(**values, sources=sources, warnings=ops.warnings)


URL_FIELDS = ("url", "endpoint")
"""Target fields that are HTTP(S) base URLs."""
HOST_PORT_FIELDS = ("monitoring_endpoint",)
"""Target fields that are ``HOST:PORT`` (a gRPC channel target)."""


def _check_values(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """The checks every source goes through, flags included: bounds, URLs, HOST:PORT."""
    for name in OPS_BOUNDS:
        if name in values and sources[name].startswith("--"):
            try:
                check_bounds(name, values[name])
            except ValueError as exc:
                raise UsageError(f"{sources[name]}: expected {exc}, got {values[name]:g}") from None
    for name in URL_FIELDS:
        if values.get(name):
            check_url(values[name], _origin(name, sources[name]))
    for name in HOST_PORT_FIELDS:
        if values.get(name):
            check_host_port(values[name], _origin(name, sources[name]))


def _origin(name: str, source: str) -> str:
    """How a message names where a value came from: the flag, ``env MLSGW_…``, or
    ``FILE: ops.KEY`` for the config file."""
    if source.startswith("[ops] in "):
        return f"{source.removeprefix('[ops] in ')}: ops.{name}"
    return source


def check_url(value: str, source: str) -> None:
    """A :class:`UsageError` unless ``value`` is an ``http://`` or ``https://`` URL with a host,
    a valid port (1-65535) if any, and no whitespace or control characters.

    Without that every probe would fail and report an outage that is really a typo.
    """
    parsed = split(value)
    if isinstance(parsed, str):
        raise UsageError(f"{source} {value!r} {parsed}")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        if "://" not in value:
            raise UsageError(
                f"{source} {value!r} has no scheme: give http://{value} or https://{value}"
            )
        raise UsageError(f"{source} {value!r} is not an http:// or https:// URL")
    if not parsed.hostname:
        raise UsageError(f"{source} {value!r} has no host: give http(s)://HOST[:PORT]")
    if port_of(parsed) == 0:
        raise UsageError(f"{source} {value!r}: the port must be a number 1-65535")
    if has_blank_or_control(value):
        raise UsageError(f"{source} {value!r} contains spaces or control characters")


def check_host_port(value: str, source: str) -> None:
    """A :class:`UsageError` unless ``value`` is ``HOST:PORT`` (``[V6]:PORT``), with a host,
    a port 1-65535, no scheme and no whitespace: a bad port must not wrap to another one."""
    usage = f"{source} {value!r}: give HOST:PORT (port 1-65535, no scheme)"
    if "://" in value or has_blank_or_control(value):
        raise UsageError(usage)
    parsed = split(f"//{value}")
    if isinstance(parsed, str) or not parsed.hostname or not port_of(parsed):
        raise UsageError(usage)
    if parsed.path or parsed.query or parsed.fragment:
        raise UsageError(usage)
