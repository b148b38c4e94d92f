"""Prometheus metrics of one relay instance (R-H2), and the session :class:`Observer` on them.

Each :class:`RelayMetrics` owns its registry, so several relays in one process (tests)
never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class RelayMetrics:
    """The ``nostr_relay_*`` metrics; the MLS gateway registers its own on :attr:`registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._event_children: dict[tuple[int, str], Counter] = {}
        self.connections = Gauge(
            "nostr_relay_connections", "Open WebSocket connections", registry=r
        )
        self.messages = Counter(
            "nostr_relay_messages_total", "Client messages by command", ["command"], registry=r
        )
        self._message_counters: dict[str, Counter] = {}
        self.events = Counter(
            "nostr_relay_events_total",
            "EVENT results by kind and result",
            ["kind", "result"],
            registry=r,
        )
        self.auth_failures = Counter(
            "nostr_relay_auth_failures_total",
            "Failed NIP-42 authentications by reason",
            ["reason"],
            registry=r,
        )
        self.rate_limited_total = Counter(
            "nostr_relay_rate_limited_total",
            "Messages refused by a rate limit",
            ["name"],
            registry=r,
        )
        self.req_rejected_total = Counter(
            "nostr_relay_req_rejected_total",
            "REQ and COUNT refused, by reason",
            ["reason"],
            registry=r,
        )
        self.store_seconds = Histogram(
            "nostr_relay_store_seconds",
            "Event store latency by operation",
            ["op"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.slow_consumers = Counter(
            "nostr_relay_slow_consumers_total",
            "Connections dropped because they stopped reading",
            registry=r,
        )
        self.fanout_checks = Counter(
            "nostr_relay_fanout_filter_checks_total",
            "Filters checked in full during live fan-out (candidates from the subscription"
            " index; a high rate per event means broad subscriptions)",
            registry=r,
        )
        self.bus_published = Counter(
            "nostr_relay_bus_published_total",
            "Accepted events put on the cluster bus (result=local_only: the bus was down)",
            ["result"],
            registry=r,
        )
        self.bus_received = Counter(
            "nostr_relay_bus_received_total",
            "Messages from other instances, by type (event, group, malformed)",
            ["type"],
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every registered metric."""
        return generate_latest(self.registry)

    # Observer protocol (relay.core.session.Observer)

    def message(self, command: str) -> None:
        """Count one client message."""
        counter = self._message_counters.get(command)
        if counter is None:  # labels() is a locked lookup; every message comes here
            counter = self._message_counters[command] = self.messages.labels(command)
        counter.inc()

    def event_result(self, kind: int, result: str) -> None:
        """Count one EVENT outcome."""
        key = (kind, result)
        child = self._event_children.get(key)
        if child is None:
            child = self._event_children[key] = self.events.labels(str(kind), result)
        child.inc()

    def auth_failure(self, reason: str) -> None:
        """Count one failed AUTH."""
        self.auth_failures.labels(reason).inc()

    def rate_limited(self, name: str) -> None:
        """Count one rate-limited message."""
        self.rate_limited_total.labels(name).inc()

    def req_rejected(self, reason: str) -> None:
        """Count one refused REQ or COUNT."""
        self.req_rejected_total.labels(reason).inc()
