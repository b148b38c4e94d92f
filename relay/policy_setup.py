"""The rule lists and per-connection limits a configuration asks for."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable

from relay.config import Config
from relay.core import policy as rules
from relay.core.policy import Policy
from relay.core.ratelimit import KindLimit, KindRateLimiter
from relay.core.session import SessionLimits
from relay.gateway import MlsGateway
from relay.settings import RateRule


def build_policy(
    config: Config,
    limiter: KindRateLimiter,
    clock: Callable[[], float],
    gateway: MlsGateway | None = None,
    *,
    shared_rate_limits: bool = False,
) -> Policy:
    """The rule lists for ``config`` (R-A2, R-A5, R-C3, NIP-70), with the MLS gateway's
    rules (R-A3, R-A4, §4) after access control and before rate limiting.

    With ``shared_rate_limits`` (cluster mode) the event rate limits are not a rule:
    the relay checks them on the bus after every rule passed, as the rule would."""
    auth = config.auth
    event_rules: list[rules.EventRule] = []
    req_rules: list[rules.ReqRule] = []
    if config.limitation.read_only:
        event_rules.append(rules.reject_when_read_only())
    event_rules.append(rules.reject_auth_events_as_event())
    if auth.allowed_networks or auth.blocked_networks:
        req_rules.append(
            rules.reject_unlisted_addresses(auth.allowed_networks, auth.blocked_networks)
        )
    if auth.blocked_pubkeys:
        event_rules.append(rules.reject_blocked_pubkeys(auth.blocked_pubkeys))
        req_rules.append(rules.reject_blocked_readers(auth.blocked_pubkeys))
    if auth.allowed_pubkeys:
        event_rules.append(
            rules.require_allowlisted_writer(
                auth.allowed_pubkeys, require_author_match=auth.require_author_match
            )
        )
        req_rules.append(rules.require_allowlisted_reader(auth.allowed_pubkeys))
    event_rules.append(rules.require_author_for_protected())
    read_rules: list[rules.ReadRule] = []
    passive_rules: list[rules.ReadRule] = []
    scope_rules: list[rules.ScopeRule] = []
    if gateway is not None:
        event_rules += gateway.event_rules()
        req_rules += gateway.req_rules()
        read_rules += gateway.read_rules()
        passive_rules += gateway.passive_rules()
        scope_rules += gateway.scope_rules()
    if config.rate_limiter.enabled and limiter.rules and not shared_rate_limits:
        event_rules.append(rules.limit_event_rate(limiter, clock, auth.allowed_pubkeys))
    return Policy(
        tuple(event_rules),
        tuple(req_rules),
        tuple(read_rules),
        tuple(passive_rules),
        guarded_kinds=gateway.guarded_kinds if gateway is not None else None,
        scope_rules=tuple(scope_rules),
    )


def session_limits(config: Config) -> SessionLimits:
    """The per-connection limits from ``[limitation]`` and ``[rate_limiter]``."""
    per_second = config.rate_limiter.messages_per_second if config.rate_limiter.enabled else 0
    return SessionLimits(**dataclasses.asdict(config.limitation), messages_per_second=per_second)


def kind_limit(rule: RateRule) -> KindLimit:
    """The limiter's rule for a ``[[rate_limiter.event]]`` table (kinds and ranges apart,
    the IP whitelist parsed)."""
    return KindLimit(
        rule.name,
        rule.limit,
        rule.period,
        rule.single_kinds,
        rule.kind_ranges,
        tuple(ipaddress.ip_network(cidr, strict=False) for cidr in rule.ip_whitelist),
    )
