"""The typed configuration: one frozen dataclass per TOML section (rnostr names).

Field metadata marks durations, secrets, pubkey lists and CIDR lists for the loader in
:mod:`relay.config`, which is the only code that builds these from files and the
environment.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from relay.core.ratelimit import kind_covered


def _meta(
    *,
    duration: bool = False,
    secret: bool = False,
    pubkeys: bool = False,
    cidrs: bool = False,
    kinds: bool = False,
) -> dict[str, bool]:
    return {
        "duration": duration,
        "secret": secret,
        "pubkeys": pubkeys,
        "cidrs": cidrs,
        "kinds": kinds,
    }


def _f(default: Any, **meta: bool) -> Any:
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata=_meta(**meta))
    return field(default=default, metadata=_meta(**meta))


@dataclass(frozen=True)
class InformationSettings:
    """``[information]``: the NIP-11 document and the relay's public URL."""

    name: str = "mlsgw"
    description: str = "MLS-over-Nostr gateway relay"
    pubkey: str | None = None
    contact: str | None = None
    software: str = "https://github.com/mlsgw/mlsgw"
    icon: str | None = None
    relay_url: str | None = None
    maintenance: bool = False
    maintenance_message: str = "relay is down for maintenance"


@dataclass(frozen=True)
class NetworkSettings:
    """``[network]``: listening address, proxies, liveness and per-connection buffers."""

    host: str = "0.0.0.0"
    port: int = 8080
    real_ip_header: str | None = None
    # Where a browser opening the relay's page (GET / without the NIP-11 Accept) is sent.
    index_redirect_to: str | None = None
    trusted_proxy_hops: int = 1
    heartbeat_interval: float = _f(60.0, duration=True)
    heartbeat_timeout: float = _f(120.0, duration=True)
    # A request head (or a whole plain HTTP request) must arrive within this time.
    handshake_timeout: float = _f(10.0, duration=True)
    max_connections_per_ip: int = 64
    # Above send_high_water a REQ answer waits for the client to read; a client whose
    # buffer stays above it without progress for slow_consumer_timeout, or whose unsent
    # data passes max_send_buffer, is dropped; max_send_buffer_total bounds all of them.
    send_high_water: int = 1024 * 1024
    slow_consumer_timeout: float = _f(30.0, duration=True)
    max_send_buffer: int = 32 * 1024 * 1024
    max_send_buffer_total: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class LimitationSettings:
    """``[limitation]``: protocol limits advertised in NIP-11 and enforced per message."""

    max_message_length: int = 524288
    max_subscriptions: int = 50
    max_filters: int = 20
    max_limit: int = 1000
    max_subid_length: int = 100
    max_event_tags: int = 2000
    # ids + authors + kinds + tag values over all of a connection's subscriptions.
    max_filter_values: int = 10000
    # The highest COUNT answered exactly (beyond it: this number, "approximate": true).
    max_count: int = 100000
    max_event_time_older_than_now: int = 94608000
    max_event_time_newer_than_now: int = 900
    read_only: bool = False


@dataclass(frozen=True)
class AccessListSettings:
    """``[auth.req]`` / ``[auth.event]``: rnostr's per-direction lists, merged into ``[auth]``."""

    pubkey_whitelist: tuple[str, ...] = _f((), pubkeys=True)
    pubkey_blacklist: tuple[str, ...] = _f((), pubkeys=True)
    ip_whitelist: tuple[str, ...] = _f((), cidrs=True)
    ip_blacklist: tuple[str, ...] = _f((), cidrs=True)


@dataclass(frozen=True)
class AuthSettings:
    """``[auth]``: NIP-42 and the allowlist (R-A1, R-A2)."""

    enabled: bool = True
    pubkey_whitelist: tuple[str, ...] = _f((), pubkeys=True)
    pubkey_blacklist: tuple[str, ...] = _f((), pubkeys=True)
    ip_whitelist: tuple[str, ...] = _f((), cidrs=True)
    ip_blacklist: tuple[str, ...] = _f((), cidrs=True)
    require_author_match: bool = True
    req: AccessListSettings = field(default_factory=AccessListSettings)
    event: AccessListSettings = field(default_factory=AccessListSettings)

    def _merged(self, name: str) -> frozenset[str]:
        values = set(getattr(self, name)) | set(getattr(self.req, name))
        return frozenset(values | set(getattr(self.event, name)))

    @property
    def allowed_pubkeys(self) -> frozenset[str]:
        """Hex pubkeys of the allowlist (``[auth]`` ∪ ``[auth.req]`` ∪ ``[auth.event]``)."""
        return self._merged("pubkey_whitelist")

    @property
    def blocked_pubkeys(self) -> frozenset[str]:
        """Hex pubkeys that may never publish or read."""
        return self._merged("pubkey_blacklist")

    @property
    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Client networks allowed to connect (empty: everyone)."""
        return tuple(ipaddress.ip_network(c, strict=False) for c in self._merged("ip_whitelist"))

    @property
    def blocked_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Client networks refused at connect time."""
        return tuple(ipaddress.ip_network(c, strict=False) for c in self._merged("ip_blacklist"))


KindSpec = int | tuple[int, int]
"""A kind, or kinds from ``start`` (included) to ``end`` (excluded): rnostr's ``[0, 10000]``."""


@dataclass(frozen=True)
class RateRule:
    """``[[rate_limiter.event]]``: at most ``limit`` events of ``kinds`` per ``period``.

    As in rnostr, ``kinds`` lists kinds and ``[start, end]`` ranges (end excluded), and a
    rule without ``kinds`` limits every kind; clients from ``ip_whitelist`` skip it."""

    name: str
    limit: int
    period: float = _f(60.0, duration=True)
    kinds: tuple[KindSpec, ...] = _f((), kinds=True)
    description: str = ""
    ip_whitelist: tuple[str, ...] = _f((), cidrs=True)

    @property
    def single_kinds(self) -> frozenset[int]:
        """The kinds ``kinds`` names one by one."""
        return frozenset(k for k in self.kinds if isinstance(k, int))

    @property
    def kind_ranges(self) -> tuple[tuple[int, int], ...]:
        """The ``[start, end]`` ranges ``kinds`` names."""
        return tuple(k for k in self.kinds if not isinstance(k, int))

    def covers(self, kind: int) -> bool:
        """Whether this rule limits ``kind``."""
        return kind_covered(kind, self.single_kinds, self.kind_ranges)


DEFAULT_RATE_RULES = (
    RateRule("mls_group_messages", 100, 60.0, (445,), "MLS group messages (kind 445)"),
    RateRule("noise_dms", 50, 60.0, (446,), "Noise DMs (kind 446)"),
    RateRule("keypackages", 10, 3600.0, (443,), "MLS key packages (kind 443)"),
)


@dataclass(frozen=True)
class RateLimiterSettings:
    """``[rate_limiter]`` (R-A5)."""

    enabled: bool = True
    messages_per_second: int = 1000
    # How often buckets that have refilled are forgotten (rnostr's name; 0: the default).
    clear_interval: float = _f(60.0, duration=True)
    event: tuple[RateRule, ...] = DEFAULT_RATE_RULES

    @property
    def rules(self) -> tuple[RateRule, ...]:
        """The configured rules, plus each default rule whose kinds no configured rule
        covers: an rnostr file that limits only 445 and 446 keeps the 443 limit."""
        extra = tuple(
            default
            for default in DEFAULT_RATE_RULES
            if not any(rule.covers(k) for rule in self.event for k in default.single_kinds)
        )
        return self.event + extra


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: the Prometheus endpoint (R-H2)."""

    enabled: bool = False
    auth: str | None = _f(None, secret=True)


@dataclass(frozen=True)
class DataSettings:
    """``[data]``: the event store (R-S1)."""

    backend: Literal["sqlite", "firestore"] | None = None
    path: str = "./data"
    synchronous: Literal["normal", "full"] = "normal"
    project_id: str | None = None
    database: str = "(default)"
    store_timeout: float = _f(5.0, duration=True)


@dataclass(frozen=True)
class ClusterSettings:
    """``[cluster]``: cross-instance fan-out (R-S2)."""

    redis_url: str | None = _f(None, secret=True)
    prefix: str = "mlsgw"


@dataclass(frozen=True)
class MlsGatewaySettings:
    """``[extensions.mls_gateway]``: the MLS gateway rules (§4)."""

    storage_backend: Literal["sqlite", "firestore"] | None = None
    project_id: str | None = None
    keypackage_ttl: float = _f(604800.0, duration=True)
    max_keypackages_per_user: int = 15
    max_keypackages_per_query: int = 1
    last_resort_grace: float = _f(600.0, duration=True)
    keypackage_fetch_rate: int = 10
    message_archive_ttl_days: int = 30
    enable_api: bool = False
    api_prefix: str = "/api/v1"
    delivery: Literal["enforce", "open"] = "enforce"
    membership: Literal["welcome", "roster"] = "welcome"
    admin_pubkeys: tuple[str, ...] = _f((), pubkeys=True)


@dataclass(frozen=True)
class OpsSettings:
    """``[ops]``: defaults for the runbook commands (R-O1)."""

    project: str | None = None
    region: str | None = None
    service: str | None = None
    url: str | None = None
    endpoint: str | None = None
    monitoring_endpoint: str | None = None
    probe_key: str | None = _f(None, secret=True)
    metrics_key: str | None = _f(None, secret=True)
    ledger: str | None = None
    backup_bucket: str | None = None
    trusted_domains: tuple[str, ...] = ()
    """Domains whose users, groups and service accounts ``mlsgw audit`` accepts in IAM."""
    rpo_hours: float = 24.0
    timeout: float = _f(10.0, duration=True)
    incident_webhook: str | None = _f(None, secret=True)
    """Slack or Google Chat incoming-webhook URL for incident notices (a secret: the URL
    is the credential)."""
    contacts: tuple[str, ...] = ()
    """Escalation contacts: ``"sev1: Primary on-call <oncall@example.com>"``,
    ``"sev1/sev2: …"``; an entry without a prefix is for every severity."""


OPS_BOUNDS: dict[str, tuple[float, float]] = {
    "timeout": (0.1, 3600.0),
    "rpo_hours": (0.1, 8760.0),
}
"""``[ops]`` numbers -> (least, most), the same for the flag, ``MLSGW_*`` and the file: a
timeout of 0 fails every probe (a false outage), and one beyond an hour (Cloud Run's longest
request) or an RPO beyond a year is a typo that would overflow the clock arithmetic."""


@dataclass(frozen=True)
class Config:
    """The whole effective configuration."""

    information: InformationSettings = field(default_factory=InformationSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    limitation: LimitationSettings = field(default_factory=LimitationSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    rate_limiter: RateLimiterSettings = field(default_factory=RateLimiterSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    data: DataSettings = field(default_factory=DataSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    mls_gateway: MlsGatewaySettings = field(default_factory=MlsGatewaySettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    source: str | None = None
    ignored: tuple[str, ...] = ()

    @property
    def store_backend(self) -> Literal["sqlite", "firestore"]:
        """``data.backend``, else the rnostr-era ``mls_gateway.storage_backend``, else sqlite."""
        return self.data.backend or self.mls_gateway.storage_backend or "sqlite"

    @property
    def firestore_project(self) -> str | None:
        """``data.project_id``, else rnostr's ``mls_gateway.project_id`` (None: the
        client library finds the project from the environment)."""
        return self.data.project_id or self.mls_gateway.project_id

    @property
    def sqlite_path(self) -> Path:
        """The SQLite database file inside ``data.path``."""
        return Path(self.data.path) / "relay.db"
