"""relay.core.auth: NIP-42 challenges and the checks on a kind-22242 answer (R-A1)."""

from __future__ import annotations

import pytest

from relay.core.auth import (
    AUTH_WINDOW_SECONDS,
    ReplayGuard,
    check_auth_event,
    new_challenge,
    relay_tag_matches_host,
    relay_url_matches,
)
from relay.core.event import Event
from tests.support.nostr import Keys

ALICE = Keys(bytes.fromhex("11" * 32))
NOW = 1_700_000_000
RELAY = "wss://relay.example.com"


def auth_event(
    challenge: str = "c1",
    relay: str | None = RELAY,
    created_at: int = NOW,
    kind: int = 22242,
) -> Event:
    tags = [["challenge", challenge]]
    if relay is not None:
        tags.insert(0, ["relay", relay])
    return ALICE.sign(kind, "", tags, created_at=created_at)


def check(event: Event, relay_url: str | None = RELAY) -> str | None:
    result = check_auth_event(event, challenge="c1", relay_url=relay_url, now=NOW)
    if result is None:
        return None
    label, rejection = result
    return f"{label}|{rejection.message()}"


def test_challenges_are_random_and_at_least_128_bits() -> None:
    """Each challenge is fresh hex with >= 128 bits of randomness."""
    challenges = {new_challenge() for _ in range(50)}
    assert len(challenges) == 50
    assert all(len(c) >= 32 and int(c, 16) >= 0 for c in challenges)


def test_a_correct_auth_event_is_accepted() -> None:
    """Right kind, challenge, relay host and time → no rejection."""
    assert check(auth_event()) is None


@pytest.mark.parametrize("offset", [-AUTH_WINDOW_SECONDS, AUTH_WINDOW_SECONDS])
def test_created_at_exactly_ten_minutes_away_is_accepted(offset: int) -> None:
    """The ±10 minute window is inclusive."""
    assert check(auth_event(created_at=NOW + offset)) is None


@pytest.mark.parametrize("offset", [-AUTH_WINDOW_SECONDS - 1, AUTH_WINDOW_SECONDS + 1])
def test_stale_or_future_created_at_is_auth_required(offset: int) -> None:
    """More than 10 minutes from now → ``auth-required:`` labelled stale."""
    result = check(auth_event(created_at=NOW + offset))
    assert result is not None and result.startswith("stale|auth-required: ")


def test_wrong_kind_is_auth_required() -> None:
    """A kind other than 22242 cannot authenticate."""
    result = check(auth_event(kind=1))
    assert result == "kind|auth-required: AUTH event must be kind 22242"


def test_wrong_challenge_is_auth_required() -> None:
    """Another connection's challenge is refused."""
    result = check(auth_event(challenge="other"))
    assert result == "challenge|auth-required: challenge does not match this connection"


def test_missing_challenge_tag_is_auth_required() -> None:
    """No challenge tag at all is refused."""
    event = ALICE.sign(22242, "", [["relay", RELAY]], created_at=NOW)
    assert check(event) == "challenge|auth-required: challenge does not match this connection"


def test_wrong_relay_host_is_auth_required() -> None:
    """A relay tag naming another host is refused when relay_url is configured."""
    result = check(auth_event(relay="wss://evil.example.com"))
    assert result is not None and result.startswith("relay|auth-required: relay tag")


def test_missing_relay_tag_is_auth_required_when_configured() -> None:
    """Without a relay tag the event is refused if the relay knows its URL."""
    assert check(auth_event(relay=None)) == "relay|auth-required: AUTH event has no relay tag"


def test_hostile_relay_tag_is_auth_required_not_an_exception() -> None:
    """A relay tag with an invalid port is refused like any other mismatch."""
    result = check(auth_event(relay="wss://relay.example.com:99999"))
    assert result is not None and result.startswith("relay|auth-required: ")


def test_relay_check_is_skipped_when_neither_url_nor_host_is_known() -> None:
    """With ``information.relay_url`` unset and no request Host any (or no) relay tag is
    accepted."""
    assert check(auth_event(relay="wss://anything.example"), relay_url=None) is None
    assert check(auth_event(relay=None), relay_url=None) is None


def test_without_relay_url_the_relay_tag_must_name_the_request_host() -> None:
    """With ``relay_url`` unset the tag is checked against the request's Host header."""

    def with_host(event: Event, host: str) -> str | None:
        result = check_auth_event(event, challenge="c1", relay_url=None, now=NOW, request_host=host)
        return None if result is None else f"{result[0]}|{result[1].message()}"

    assert with_host(auth_event(relay="wss://relay.example.com"), "relay.example.com") is None
    refused = with_host(auth_event(relay="wss://evil-relay.example"), "relay.example.com")
    assert refused is not None and refused.startswith("relay|auth-required: relay tag")
    missing = with_host(auth_event(relay=None), "relay.example.com")
    assert missing == "relay|auth-required: AUTH event has no relay tag"
    no_host = with_host(auth_event(relay="wss://relay.example.com"), "")
    assert no_host == "relay|auth-required: cannot check the relay tag: the request had no Host"


@pytest.mark.parametrize(
    ("tag", "host", "same"),
    [
        ("wss://relay.example.com", "relay.example.com", True),
        ("ws://relay.example.com", "relay.example.com", True),
        ("wss://relay.example.com", "relay.example.com:443", True),
        ("wss://relay.example.com", "relay.example.com:80", True),
        ("ws://RELAY.example.com./path", "relay.example.com", True),
        ("ws://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("wss://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("ws://[::1]:8080", "[::1]:8080", True),
        ("ws://127.0.0.1", "127.0.0.1:8080", False),
        ("ws://127.0.0.1:8081", "127.0.0.1:8080", False),
        ("wss://evil-relay.example", "relay.example.com", False),
        ("wss://relay.example.com.evil.com", "relay.example.com", False),
        ("relay.example.com", "relay.example.com", False),
        ("wss://relay.example.com", "", False),
        ("wss://relay.example.com", "evil.example@relay.example.com", False),
        ("wss://relay.example.com", "relay.example.com:notaport", False),
    ],
)
def test_relay_tag_matches_host_ignores_the_scheme(tag: str, host: str, same: bool) -> None:
    """Hosts compare case-insensitively; 80 and 443 both count as default ports."""
    assert relay_tag_matches_host(tag, host) is same


@pytest.mark.parametrize(
    ("tag", "configured", "same"),
    [
        ("wss://relay.example.com", "wss://relay.example.com", True),
        ("wss://relay.example.com/", "wss://relay.example.com", True),
        ("wss://RELAY.example.com", "wss://relay.example.com/path", True),
        ("wss://relay.example.com:443", "wss://relay.example.com", True),
        ("ws://relay.example.com", "wss://relay.example.com", True),
        ("wss://relay.example.com.", "wss://relay.example.com", True),
        ("ws://127.0.0.1:8080", "ws://127.0.0.1:8080", True),
        ("ws://127.0.0.1:8081", "ws://127.0.0.1:8080", False),
        ("ws://127.0.0.1", "ws://127.0.0.1:8080", False),
        ("wss://relay.example.com:8443", "wss://relay.example.com:443", False),
        ("wss://relay.example.com", "wss://relay.example.com:443", True),
        ("ws://[::1]:8080", "ws://[::1]:8080", True),
        ("ws://[::1]:8081", "ws://[::1]:8080", False),
        ("wss://other.example.com", "wss://relay.example.com", False),
        ("wss://other.example.com:8443", "wss://relay.example.com", False),
        ("ws://[::2]:7777", "ws://[::1]", False),
        ("wss://relay.example.com.evil.com", "wss://relay.example.com", False),
        ("relay.example.com", "wss://relay.example.com", False),
        ("", "wss://relay.example.com", False),
        ("wss://[::1", "wss://relay.example.com", False),
        ("wss://relay.example.com:99999", "wss://relay.example.com", False),
        ("wss://relay.example.com:abc", "wss://relay.example.com", False),
        ("wss://relay.example.com", "wss://relay.example.com:notaport", False),
    ],
)
def test_relay_url_matching_compares_host_and_the_port_relay_url_names(
    tag: str, configured: str, same: bool
) -> None:
    """Hosts compare case-insensitively; paths do not matter; when ``relay_url`` names a
    port, a non-default one in the tag must be the same."""
    assert relay_url_matches(tag, configured) is same


@pytest.mark.parametrize(
    ("tag", "configured"),
    [
        ("ws://127.0.0.1:7777", "ws://127.0.0.1"),
        ("wss://relay.example.com:8443", "wss://relay.example.com"),
        ("ws://[::1]:7777", "ws://[::1]"),
    ],
)
def test_a_relay_url_without_a_port_matches_the_host_on_any_port(tag: str, configured: str) -> None:
    """Clients put the URL they dialled, port included, into the tag: with a
    ``relay_url`` that names no port only the host is compared."""
    assert relay_url_matches(tag, configured) is True


def test_auth_naming_the_dialled_port_is_accepted_when_relay_url_has_none() -> None:
    """``relay_url = ws://127.0.0.1`` and a client that dialled ``ws://127.0.0.1:7777``
    authenticates; another host on that port does not."""
    assert check(auth_event(relay="ws://127.0.0.1:7777"), relay_url="ws://127.0.0.1") is None
    refused = check(auth_event(relay="ws://127.0.0.2:7777"), relay_url="ws://127.0.0.1")
    assert refused is not None and refused.startswith("relay|auth-required: relay tag")


def test_replay_guard_accepts_a_signature_once_within_its_window() -> None:
    """A NIP-98 signature authorises one request; it is forgotten once it cannot pass
    the ±60 s window any more, so memory stays bounded."""
    guard = ReplayGuard(window=60)
    assert guard.first_use("sig-a", created_at=1000, now=1000) is True
    assert guard.first_use("sig-a", created_at=1000, now=1030) is False
    assert guard.first_use("sig-b", created_at=1000, now=1030) is True
    assert guard.first_use("sig-c", created_at=1200, now=1200) is True
    assert len(guard._seen) == 1  # a and b expired and were dropped
