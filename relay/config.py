"""Configuration: one TOML file (rnostr section and key names) plus environment overrides.

:func:`load_config` is the only place that reads the file and ``os.environ``-style
mappings. Everything downstream receives the frozen :class:`Config`.

Precedence: built-in defaults < TOML file < ``MLSGW_<SECTION>__<KEY>`` < ``PORT``. On Cloud
Run (``K_SERVICE`` set) an unset ``network.real_ip_header`` is ``x-forwarded-for``.
Unknown keys and wrong types raise :class:`ConfigError` naming the file, the key and
the expected type; keys of the rnostr format that mlsgw does not use are accepted and
listed in :attr:`Config.ignored`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from relay.core.bech32 import normalise_pubkey
from relay.settings import (
    DEFAULT_RATE_RULES,
    OPS_BOUNDS,
    AccessListSettings,
    AuthSettings,
    ClusterSettings,
    Config,
    DataSettings,
    InformationSettings,
    LimitationSettings,
    MetricsSettings,
    MlsGatewaySettings,
    NetworkSettings,
    OpsSettings,
    RateLimiterSettings,
    RateRule,
)

__all__ = [
    "ConfigError",
    "DEFAULT_CONFIG_PATH",
    "load_config",
    "parse_duration",
    "redacted_dict",
    "resolve_config_path",
    "AccessListSettings",
    "AuthSettings",
    "ClusterSettings",
    "Config",
    "DataSettings",
    "DEFAULT_RATE_RULES",
    "InformationSettings",
    "LimitationSettings",
    "MetricsSettings",
    "MlsGatewaySettings",
    "NetworkSettings",
    "OpsSettings",
    "RateLimiterSettings",
    "RateRule",
]

DEFAULT_CONFIG_PATH = Path("config/mlsgw.toml")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every finding, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# TOML table name -> Config attribute.
_SECTIONS: dict[str, str] = {
    "information": "information",
    "network": "network",
    "limitation": "limitation",
    "auth": "auth",
    "rate_limiter": "rate_limiter",
    "metrics": "metrics",
    "data": "data",
    "cluster": "cluster",
    "extensions.mls_gateway": "mls_gateway",
    "ops": "ops",
}

# rnostr keys mlsgw accepts but does not use, with the reason shown by `config check`.
_IGNORED_KEYS: dict[str, str] = {
    "data.db_query_timeout": "every store call is bounded by data.store_timeout",
    "limitation.min_prefix": "id/author prefix queries are not supported (exact ids only)",
    "extensions.mls_gateway.welcome_ttl": "welcomes only travel inside gift wraps (archive TTL)",
    "extensions.mls_gateway.enable_message_archive": "the store is the archive",
    "information.version": "the version is the package version",
    "auth.event.event_pubkey_whitelist": "the allowlist applies to authenticated connections",
}
_IGNORED_SECTIONS: dict[str, str] = {
    "count": "NIP-45 COUNT is always on",
    "search": "NIP-50 search is not supported",
    "thread": "threading is managed by the server",
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from an int/float (seconds) or a string like ``"100ms"``, ``"60s"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("negative duration")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError("not a duration")


def _type_name(tp: Any, meta: Mapping[str, bool]) -> str:
    if meta.get("duration"):
        return "duration (seconds or a string like '60s')"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_name(args[0], meta)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(inner):
            return "array of tables"
        return f"array of {_type_name(inner, {})}s"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


MAX_KIND = 65535


def _is_int(value: object) -> typing.TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _Coercer:
    """Converts raw TOML/env values to field types, collecting problems instead of raising."""

    def __init__(self, origin: str, names: Mapping[str, str] | None = None) -> None:
        self.origin = origin
        self.names = names or {}  # dotted key -> the variable that set it, named in its problems
        self.problems: list[str] = []

    def fail(self, key: str, expected: str, value: object) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        origin = f"{self.origin}: {self.names[key]}" if key in self.names else self.origin
        self.problems.append(f"{origin}: {key}: expected {expected}, got {shown}")

    def value(self, key: str, tp: Any, meta: Mapping[str, bool], raw: object) -> Any:
        expected = _type_name(tp, meta)
        origin = typing.get_origin(tp)
        if origin in (types.UnionType, typing.Union):
            if raw is None:
                return None
            inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
            return self.value(key, inner, meta, raw)
        if meta.get("kinds"):
            return self.kinds(key, raw)
        if meta.get("duration"):
            try:
                return parse_duration(raw)
            except ValueError:
                self.fail(key, expected, raw)
                return None
        if origin is Literal:
            if raw in typing.get_args(tp):
                return raw
            self.fail(key, expected, raw)
            return None
        if origin is tuple:
            return self.sequence(key, typing.get_args(tp)[0], meta, raw, expected)
        if tp is bool:
            if isinstance(raw, bool):
                return raw
        elif tp is int:
            if _is_int(raw):
                if raw < 0:
                    self.fail(key, "a non-negative integer", raw)
                    return None
                return raw
        elif tp is float:
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return float(raw)
        elif tp is str:
            if isinstance(raw, str):
                return raw
        self.fail(key, expected, raw)
        return None

    def sequence(
        self, key: str, inner: Any, meta: Mapping[str, bool], raw: object, expected: str
    ) -> Any:
        if not isinstance(raw, list):
            self.fail(key, expected, raw)
            return None
        if dataclasses.is_dataclass(inner):
            built = [self.table(f"{key}[{i}]", inner, item) for i, item in enumerate(raw)]
            return tuple(b for b in built if b is not None)
        items = []
        for item in raw:
            converted = self.value(key, inner, {}, item)
            if converted is None:
                return None
            items.append(converted)
        if meta.get("pubkeys"):
            return self.pubkeys(key, items)
        if meta.get("cidrs"):
            for cidr in items:
                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    self.fail(key, "an IP address or CIDR range", cidr)
                    return None
        return tuple(items)

    def kinds(self, key: str, raw: object) -> tuple[int | tuple[int, int], ...] | None:
        """rnostr's rule kinds: ``[1, 2, [30000, 40000]]``, each a kind or a range from
        ``start`` (included) to ``end`` (excluded)."""
        expected = "an array of kinds and [start, end] ranges, e.g. [1, [30000, 40000]]"
        if not isinstance(raw, list):
            self.fail(key, expected, raw)
            return None
        out: list[int | tuple[int, int]] = []
        for item in raw:
            if _is_int(item) and 0 <= item <= MAX_KIND:
                out.append(item)
            elif (
                isinstance(item, list)
                and len(item) == 2
                and all(_is_int(k) for k in item)
                and 0 <= item[0] < item[1] <= MAX_KIND + 1
            ):
                out.append((item[0], item[1]))
            else:
                self.fail(key, expected, item)
                return None
        return tuple(out)

    def pubkeys(self, key: str, items: list[str]) -> tuple[str, ...] | None:
        out = []
        for item in items:
            try:
                out.append(normalise_pubkey(item))
            except ValueError as exc:
                self.fail(key, f"a hex or npub pubkey ({exc})", item)
                return None
        return tuple(out)

    def table(self, prefix: str, cls: Any, raw: object) -> Any:
        """Build dataclass ``cls`` from a TOML table, reporting unknown keys and bad types."""
        if not isinstance(raw, dict):
            self.fail(prefix, "a table", raw)
            return None
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            full = f"{prefix}.{key}"
            if key not in fields:
                self.problems.append(f"{self.origin}: unknown key {full!r}")
                continue
            fld = fields[key]
            if dataclasses.is_dataclass(hints[key]):
                built = self.table(full, hints[key], value)
            else:
                built = self.value(full, hints[key], fld.metadata, value)
            if built is not None or value is None:
                kwargs[key] = built
        missing = [
            n
            for n, f in fields.items()
            if n not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        for name in missing:
            self.problems.append(f"{self.origin}: {prefix}.{name}: required key is missing")
        if missing:
            return None
        return cls(**kwargs)


def _split_ignored(data: dict[str, Any], ignored: list[str]) -> dict[str, Any]:
    """Remove rnostr sections/keys mlsgw does not use, recording them in ``ignored``."""
    data = dict(data)
    for section, why in _IGNORED_SECTIONS.items():
        if section in data:
            del data[section]
            ignored.append(f"[{section}] ({why})")
    for dotted, why in _IGNORED_KEYS.items():
        *path, key = dotted.split(".")
        table: Any = data
        for part in path:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict) and key in table:
            del table[key]
            ignored.append(f"{dotted} ({why})")
    return data


_SHORT_NAMES = {"mls_gateway": "extensions.mls_gateway"}
"""Sections also read under a shorter name, in the file and the environment
(``[mls_gateway]``, ``MLSGW_MLS_GATEWAY__…``)."""


def _sections_of(data: dict[str, Any], origin: str, problems: list[str]) -> dict[str, Any]:
    """Flatten ``extensions.mls_gateway`` and reject unknown top-level tables."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name == "extensions" and isinstance(value, dict):
            for ext, table in value.items():
                if f"extensions.{ext}" in _SECTIONS:
                    out[f"extensions.{ext}"] = table
                else:
                    problems.append(f"{origin}: unknown section [extensions.{ext}]")
        elif name in _SECTIONS:
            out[name] = value
        elif name not in _SHORT_NAMES or not isinstance(value, dict):
            problems.append(f"{origin}: unknown section [{name}]")
    for short, full in _SHORT_NAMES.items():
        if isinstance(data.get(short), dict):
            if full in out:
                problems.append(f"{origin}: [{short}] and [{full}] both given; keep one")
            out[full] = data[short]
    return out


def _env_value(raw: str, tp: Any, meta: Mapping[str, bool]) -> object:
    """Turn an environment string into the TOML-like value the coercer expects."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        tp = [a for a in typing.get_args(tp) if a is not type(None)][0]
        origin = typing.get_origin(tp)
    if meta.get("duration"):
        return raw
    if tp is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            return raw
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    if origin is tuple:
        stripped = raw.strip()
        if stripped.startswith("["):
            try:
                return tomllib.loads(f"v = {stripped}")["v"]
            except tomllib.TOMLDecodeError:
                return raw
        parts = [p.strip() for p in stripped.split(",") if p.strip()]
        inner = typing.get_args(tp)[0]
        if inner is int:
            try:
                return [int(p) for p in parts]
            except ValueError:
                return raw
        return parts
    return raw


def _env_target(section: str) -> tuple[str, str | None, Any] | None:
    """(top-level section, sub-table or None, dataclass) for an env section path."""
    section = _SHORT_NAMES.get(section, section)
    config_hints = typing.get_type_hints(Config)
    if section in _SECTIONS:
        return section, None, config_hints[_SECTIONS[section]]
    head, _, sub = section.rpartition(".")
    if head in _SECTIONS:
        sub_tp = typing.get_type_hints(config_hints[_SECTIONS[head]]).get(sub)
        if dataclasses.is_dataclass(sub_tp):
            return head, sub, sub_tp
    return None


CLOUD_RUN_IP_HEADER = "x-forwarded-for"
"""``network.real_ip_header`` when running on Cloud Run (``K_SERVICE`` set) and unset."""


def _apply_env(
    tables: dict[str, dict[str, Any]], environ: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """Overlay ``MLSGW_<SECTION>__<KEY>`` (and ``PORT``) onto the raw tables; return the
    variable that set each dotted key (``"auth.enabled": "MLSGW_AUTH__ENABLED"``)."""
    names: dict[str, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith("MLSGW_") or "__" not in name:
            continue
        parts = name[len("MLSGW_") :].lower().split("__")
        section, key = ".".join(parts[:-1]), parts[-1]
        target = _env_target(section)
        if target is None:
            problems.append(f"environment: {name}: unknown section {section!r}")
            continue
        top, sub, cls = target
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if key not in fields or dataclasses.is_dataclass(hints[key]):
            problems.append(f"environment: {name}: unknown key {key!r} in [{section}]")
            continue
        tp = hints[key]
        if typing.get_origin(tp) is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            problems.append(f"environment: {name}: {section}.{key} can only be set in the file")
            continue
        table = tables.setdefault(top, {})
        if sub is not None:
            table = table.setdefault(sub, {})
        table[key] = _env_value(raw, tp, fields[key].metadata)
        names[".".join(p for p in (top, sub, key) if p)] = name
    if "PORT" in environ:
        try:
            tables.setdefault("network", {})["port"] = int(environ["PORT"])
            names["network.port"] = "PORT"
        except ValueError:
            problems.append(f"environment: PORT: expected integer, got {environ['PORT']!r}")
    return names


def resolve_config_path(path: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The file to load: ``path``, else ``$MLSGW_CONFIG`` (set but empty: no file, built-in
    defaults), else ``config/mlsgw.toml`` if present."""
    if path is not None:
        return Path(path)
    if "MLSGW_CONFIG" in environ:
        return Path(environ["MLSGW_CONFIG"]) if environ["MLSGW_CONFIG"] else None
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load, merge and validate the configuration.

    Raises :class:`ConfigError` listing every problem (file, key, expected type);
    never returns a partially valid config.
    """
    environ = environ if environ is not None else {}
    config_path = resolve_config_path(path, environ)
    problems: list[str] = []
    ignored: list[str] = []
    data: dict[str, Any] = {}
    origin = str(config_path) if config_path else "defaults"
    if config_path is not None:
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{config_path}: file not found"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{config_path}: cannot read: {exc}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{config_path}: invalid TOML: {exc}"]) from None
    tables = _sections_of(_split_ignored(data, ignored), origin, problems)
    env_problems: list[str] = []
    env_tables: dict[str, dict[str, Any]] = {}
    env_names = _apply_env(env_tables, environ, env_problems)
    if environ.get("K_SERVICE") and not any(
        "real_ip_header" in t.get("network", {}) for t in (tables, env_tables)
    ):
        # On Cloud Run every connection comes from Google's front end, which appends the
        # client's address to X-Forwarded-For: without it the per-IP connection cap, rate
        # limits and IP rules would all see the proxy. A value set anywhere ("" = off) wins.
        env_tables.setdefault("network", {})["real_ip_header"] = CLOUD_RUN_IP_HEADER

    file_coercer = _Coercer(origin)
    env_coercer = _Coercer("environment", env_names)
    hints = typing.get_type_hints(Config)
    kwargs: dict[str, Any] = {}
    for section, attr in _SECTIONS.items():
        cls = hints[attr]
        from_file = tables.get(section, {})
        built = file_coercer.table(section, cls, from_file)
        if built is None:
            continue
        overrides = env_tables.get(section)
        if overrides:
            merged = _merge(from_file, overrides)
            checked = env_coercer.table(section, cls, merged)
            if checked is not None:
                built = checked
        kwargs[attr] = built
    problems += file_coercer.problems + env_problems + env_coercer.problems
    if problems:
        raise ConfigError(problems)
    config = Config(
        **kwargs, source=str(config_path) if config_path else None, ignored=tuple(ignored)
    )
    _check_consistency(config, env_names)
    return config


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_consistency(config: Config, env_names: Mapping[str, str]) -> None:
    """Problems between values. Each names where its value came from: the environment
    and its variable (``env_names``: dotted key -> variable), else the file, else the
    defaults."""
    problems: list[str] = []

    def problem(section: str, key: str, text: str) -> None:
        """``<origin>: <section>.<key><text>``."""
        name = env_names.get(f"{section}.{key}")
        origin = f"environment: {name}" if name else config.source or "defaults"
        problems.append(f"{origin}: {section}.{key}{text}")

    network, gateway = config.network, config.mls_gateway
    if network.port > 65535:
        problem("network", "port", ": expected a port number (0-65535)")
    if network.heartbeat_timeout <= network.heartbeat_interval:
        problem("network", "heartbeat_timeout", " must be longer than network.heartbeat_interval")
    if network.trusted_proxy_hops < 1:
        problem("network", "trusted_proxy_hops", ": expected at least 1")
    if gateway.max_keypackages_per_query < 1:
        problem("extensions.mls_gateway", "max_keypackages_per_query", ": expected at least 1")
    if config.information.relay_url and not _names_a_host(config.information.relay_url):
        problem(
            "information",
            "relay_url",
            ": expected the relay's public URL with its scheme, e.g. wss://relay.example.com"
            " (AUTH's relay tag is checked against its host)",
        )
    if gateway.enable_api and not config.information.relay_url:
        problem(
            "extensions.mls_gateway",
            "enable_api",
            " needs information.relay_url: NIP-98 tokens are checked against the relay's"
            " public URL, and without it the request's Host header (which a caller can"
            " forge) would decide, making a token signed for another service valid here",
        )
    if not gateway.api_prefix.startswith("/"):
        problem("extensions.mls_gateway", "api_prefix", ": must start with '/'")
    if config.limitation.max_limit < 1:
        problem("limitation", "max_limit", ": expected at least 1")
    for key, (least, most) in OPS_BOUNDS.items():
        if not least <= getattr(config.ops, key) <= most:
            problem("ops", key, f": expected a number from {least:g} to {most:g}")
    _cluster_problems(config, problem)
    if problems:
        raise ConfigError(problems)


def _names_a_host(url: str) -> bool:
    """A ws, wss, http or https URL with a host and a valid port."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # ValueError for a non-numeric or out-of-range port
    except ValueError:
        return False
    return parts.scheme.lower() in ("ws", "wss", "http", "https") and bool(parts.hostname)


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _cluster_problems(config: Config, problem: Callable[[str, str, str], None]) -> None:
    """``[cluster]``: a URL the Redis client accepts (never echoed: it may hold the
    password) and a prefix that names a channel."""
    url = config.cluster.redis_url
    if url is not None:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in _REDIS_SCHEMES:
            problem("cluster", "redis_url", ": expected a redis://, rediss:// or unix:// URL")
        else:
            # The client's own parse (port, db, query options), so that `config check`
            # refuses what `serve` would; only loaded when a bus is configured.
            from redis.connection import parse_url

            try:
                parse_url(url)  # type: ignore[no-untyped-call]
            except ValueError as exc:
                problem("cluster", "redis_url", f": {exc}")
    prefix = config.cluster.prefix
    if not prefix or any(c.isspace() for c in prefix):
        problem("cluster", "prefix", ": expected a non-empty name without spaces")


_REDACTED = "***"


def redacted_dict(config: Config) -> dict[str, Any]:
    """The effective config as TOML-shaped data with every secret replaced by ``***``."""

    def convert(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            out = {}
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if f.metadata.get("secret") and value:
                    value = _redact_url(value) if "://" in str(value) else _REDACTED
                out[f.name] = convert(value)
            return out
        if isinstance(obj, tuple):
            return [convert(v) for v in obj]
        return obj

    result: dict[str, Any] = {}
    for section, attr in _SECTIONS.items():
        value = convert(getattr(config, attr))
        if section.startswith("extensions."):
            result.setdefault("extensions", {})[section.split(".", 1)[1]] = value
        else:
            result[section] = value
    return result


def _redact_url(url: str) -> str:
    """Hide the password in ``scheme://user:password@host`` URLs; in a secret URL without
    one (an incoming webhook) the path is the credential, so it is hidden instead."""
    # The userinfo runs to the last "@" before the path, as redis-py and urllib read it.
    hidden = re.sub(r"(//[^:/@?#]*:)[^/?#]*@", r"\1" + _REDACTED + "@", url, count=1)
    if hidden != url:
        return hidden
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/?#]*)[/?#].+$", r"\1/" + _REDACTED, url, flags=re.I)
