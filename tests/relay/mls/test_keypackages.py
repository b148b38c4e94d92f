"""relay.mls.keypackages: the 443 ingest checks (R-M1) and the fetch plan (R-M1b), pure."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.core.event import Event
from relay.core.reasons import Rejection
from relay.mls.keypackages import (
    StoredKeyPackage,
    decode_content,
    evictions,
    keypackage_expiry,
    plan_fetch,
)
from tests.support.nostr import Keys

ALICE, BOB = Keys(bytes.fromhex("11" * 32)), Keys(bytes.fromhex("22" * 32))
NOW = 1_700_000_000
TTL = 7 * 86400
KP_BYTES = bytes(range(1, 40))


def kp(content: str = KP_BYTES.hex(), tags: list[list[str]] | None = None) -> Event:
    return ALICE.sign(443, content, tags or [], created_at=NOW)


def expiry(event: Event) -> int | str:
    """The expiry, or the rejection's message."""
    result = keypackage_expiry(event, now=NOW, ttl=TTL)
    return result.message() if isinstance(result, Rejection) else result


# --- content encodings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        (KP_BYTES.hex(), None),
        (KP_BYTES.hex(), "hex"),
        (KP_BYTES.hex().upper(), "hex"),
        (base64.b64encode(KP_BYTES).decode(), "base64"),
        (base64.b64encode(KP_BYTES).decode().rstrip("="), "base64"),
        (base64.urlsafe_b64encode(KP_BYTES).decode(), "base64"),
        (base64.urlsafe_b64encode(KP_BYTES).decode().rstrip("="), "base64"),
    ],
    ids=["hex-default", "hex", "hex-upper", "b64", "b64-unpadded", "b64url", "b64url-unpadded"],
)
def test_decode_content_accepts_every_documented_encoding(
    content: str, encoding: str | None
) -> None:
    """Hex (strict) and base64 standard/URL-safe, padded or not, give the same bytes."""
    assert decode_content(content, encoding) == KP_BYTES


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        ("", None),
        ("", "base64"),
        ("abc", None),  # odd number of hex digits
        ("zz", "hex"),
        ("0x0102", "hex"),
        ("AAE=", None),  # base64 without the encoding tag is not hex
        ("!!!!", "base64"),
        ("AAEC+/-_", "base64"),  # mixed standard and URL-safe alphabets
        ("A", "base64"),  # impossible length
        ("AAECAw===", "base64"),  # too much padding
        ("AA=E", "base64"),  # padding in the middle
        ("0102", "base58"),  # unknown encoding
    ],
)
def test_decode_content_refuses_empty_and_undecodable_content(
    content: str, encoding: str | None
) -> None:
    """Empty, malformed or unknown-encoding content decodes to None."""
    assert decode_content(content, encoding) is None


@given(st.binary(min_size=1, max_size=300))
def test_decode_content_round_trips_any_bytes_in_every_encoding(data: bytes) -> None:
    """Whatever a client encodes, the relay decodes back to the same bytes."""
    std = base64.b64encode(data).decode()
    url = base64.urlsafe_b64encode(data).decode()
    assert decode_content(data.hex(), None) == data
    for text in (std, std.rstrip("="), url, url.rstrip("=")):
        assert decode_content(text, "base64") == data


# --- the 443 ingest matrix -----------------------------------------------------------------


def test_keypackage_without_exp_expires_after_the_ttl() -> None:
    """No ``exp`` tag: ``expires_at`` = now + keypackage_ttl."""
    assert expiry(kp()) == NOW + TTL


def test_keypackage_exp_is_kept_when_sooner_than_the_ttl() -> None:
    """An ``exp`` before now + ttl is the expiry."""
    assert expiry(kp(tags=[["exp", str(NOW + 60)]])) == NOW + 60


def test_keypackage_exp_is_capped_at_the_ttl() -> None:
    """An ``exp`` far in the future is capped at now + keypackage_ttl."""
    assert expiry(kp(tags=[["exp", str(NOW + 10 * TTL)]])) == NOW + TTL


@pytest.mark.parametrize("exp", [NOW - 1, NOW])
def test_keypackage_with_exp_not_in_the_future_is_expired(exp: int) -> None:
    """``exp`` at or before now is refused."""
    assert expiry(kp(tags=[["exp", str(exp)]])) == "invalid: keypackage expired"


@pytest.mark.parametrize("exp", ["soon", "-5", "1.5", "", "²", "9" * 5000, " 1"])
def test_keypackage_exp_that_is_not_unix_seconds_is_invalid(exp: str) -> None:
    """A malformed ``exp`` (including non-ASCII digits and huge numbers) is refused, never
    an exception."""
    assert expiry(kp(tags=[["exp", exp]])) == "invalid: keypackage exp must be unix seconds"


def test_keypackage_owner_tag_must_be_the_author() -> None:
    """A ``p`` tag naming someone else is an owner mismatch; naming the author is fine."""
    assert expiry(kp(tags=[["p", BOB.pubkey]])) == "invalid: keypackage owner mismatch"
    assert expiry(kp(tags=[["p", ALICE.pubkey]])) == NOW + TTL


def test_a_second_p_tag_naming_someone_else_is_an_owner_mismatch_too() -> None:
    both = [["p", ALICE.pubkey], ["p", BOB.pubkey]]
    assert expiry(kp(tags=both)) == "invalid: keypackage owner mismatch"
    assert expiry(kp(tags=[["p", ALICE.pubkey], ["p", ALICE.pubkey]])) == NOW + TTL


def test_keypackage_owner_is_checked_before_content() -> None:
    """The owner mismatch is reported even when the content is also bad."""
    assert expiry(kp("", [["p", BOB.pubkey]])) == "invalid: keypackage owner mismatch"


@pytest.mark.parametrize(
    ("content", "tags"),
    [
        ("", []),
        ("xyz", []),
        ("abc", [["encoding", "hex"]]),
        ("!!", [["encoding", "base64"]]),
        (base64.b64encode(KP_BYTES).decode(), []),
        (KP_BYTES.hex(), [["encoding", "base32"]]),
    ],
)
def test_keypackage_with_empty_or_undecodable_content_is_invalid(
    content: str, tags: list[list[str]]
) -> None:
    """Content that does not decode per its ``encoding`` tag is refused."""
    assert expiry(kp(content, tags)) == "invalid: keypackage content"


def test_keypackage_base64_content_is_accepted_with_its_encoding_tag() -> None:
    """``["encoding","base64"]`` with URL-safe unpadded content is accepted."""
    content = base64.urlsafe_b64encode(KP_BYTES).decode().rstrip("=")
    assert expiry(kp(content, [["encoding", "base64"]])) == NOW + TTL


def test_keypackage_protocol_version_must_be_1_0() -> None:
    """``mls_protocol_version`` 1.0 is accepted, anything else refused."""
    assert expiry(kp(tags=[["mls_protocol_version", "1.0"]])) == NOW + TTL
    refused = expiry(kp(tags=[["mls_protocol_version", "2.0"]]))
    assert isinstance(refused, str)
    assert refused.startswith("invalid: unsupported mls_protocol_version")


def test_keypackage_metadata_tags_are_accepted() -> None:
    """The recognised metadata tags (current and older names) do not affect acceptance."""
    tags = [
        ["mls_protocol_version", "1.0"],
        ["ciphersuite", "0x0001"],
        ["extensions", "0x0001", "0x0002"],
        ["relays", "wss://a.example"],
        ["relay", "wss://b.example"],
        ["client", "test"],
        ["-"],
        ["cs", "1"],
        ["kpr", "wss://c.example"],
    ]
    assert expiry(kp(tags=tags)) == NOW + TTL


# --- the fetch plan ------------------------------------------------------------------------


def stored(
    n: int, *, pending: tuple[int, ...] = (), expired: tuple[int, ...] = ()
) -> list[StoredKeyPackage]:
    """``n`` key packages kp0 (oldest) … kp{n-1}; some pending deletion or expired."""
    return [
        StoredKeyPackage(
            f"kp{i}",
            ALICE.pubkey,
            created_at=NOW - 100 + i,
            expires_at=NOW - 1 if i in expired else NOW + TTL,
            pending_deletion=i in pending,
        )
        for i in range(n)
    ]


def test_fetch_serves_the_oldest_one_and_consumes_it() -> None:
    """per_author 1: the oldest is served and deleted."""
    plan = plan_fetch(stored(3), per_author=1, now=NOW)
    assert plan.serve == ("kp0",) and plan.consume == ("kp0",) and plan.last_resort is None


def test_fetch_with_per_author_two_serves_the_two_oldest() -> None:
    """per_author 2 with three available: both served and consumed."""
    plan = plan_fetch(stored(3), per_author=2, now=NOW)
    assert plan.serve == ("kp0", "kp1") and plan.consume == ("kp0", "kp1")


@pytest.mark.parametrize(("asked", "served"), [(5, 2), (100, 2), (0, 1), (-3, 1)])
def test_fetch_per_author_is_clamped_between_one_and_the_hard_cap(asked: int, served: int) -> None:
    """At least one, and never more than two key packages per author (hard cap)."""
    assert len(plan_fetch(stored(10), per_author=asked, now=NOW).serve) == served


def test_fetch_keeps_the_owners_last_key_package() -> None:
    """The last one is served but not consumed ("last resort"), every time."""
    available = stored(1)
    for _ in range(3):
        plan = plan_fetch(available, per_author=1, now=NOW)
        assert plan.serve == ("kp0",) and plan.consume == () and plan.last_resort == "kp0"


def test_fetch_of_two_when_two_remain_consumes_one_and_keeps_the_last() -> None:
    """With exactly two left, the older is consumed and the newer is the last resort."""
    plan = plan_fetch(stored(2), per_author=2, now=NOW)
    assert plan.serve == ("kp0", "kp1")
    assert plan.consume == ("kp0",) and plan.last_resort == "kp1"


def test_fetch_without_consume_deletes_nothing() -> None:
    """``consume=False`` serves the same plan but consumes nothing."""
    plan = plan_fetch(stored(3), per_author=2, now=NOW, consume=False)
    assert plan.serve == ("kp0", "kp1") and plan.consume == ()


def test_fetch_excludes_expired_key_packages() -> None:
    """Expired ones are never served; with only expired ones, nothing is."""
    plan = plan_fetch(stored(3, expired=(0,)), per_author=1, now=NOW)
    assert plan.serve == ("kp1",)
    assert plan_fetch(stored(2, expired=(0, 1)), per_author=1, now=NOW).serve == ()


def test_fetch_skips_pending_deletions_while_fresh_ones_exist() -> None:
    """A last resort scheduled for deletion is not served while fresh ones remain."""
    plan = plan_fetch(stored(3, pending=(0,)), per_author=2, now=NOW)
    assert plan.serve == ("kp1", "kp2")
    assert plan.consume == ("kp1",) and plan.last_resort == "kp2"


def test_fetch_serves_a_pending_deletion_when_nothing_else_is_left() -> None:
    """When only the pending last resort remains, it is served (and kept)."""
    plan = plan_fetch(stored(1, pending=(0,)), per_author=1, now=NOW)
    assert plan.serve == ("kp0",) and plan.consume == () and plan.last_resort == "kp0"


def test_fetch_orders_same_second_key_packages_by_id() -> None:
    """Ties in created_at are broken by event id, so every store agrees."""
    same = [StoredKeyPackage(i, ALICE.pubkey, NOW, NOW + TTL) for i in ("b", "a", "c")]
    assert plan_fetch(same, per_author=2, now=NOW).serve == ("a", "b")


def test_fetch_narrowed_by_the_filter_still_consumes_unless_it_is_the_owners_last() -> None:
    """A filter matching only some key packages (``ids``, ``since``) is served from those,
    and each one served is consumed while the owner holds others: narrowing never makes a
    key package the owner's "last"."""
    plan = plan_fetch(stored(4), per_author=1, now=NOW, matching={"kp3"})
    assert plan.serve == ("kp3",) and plan.consume == ("kp3",) and plan.last_resort is None
    plan = plan_fetch(stored(2), per_author=2, now=NOW, matching={"kp0", "kp1"})
    assert plan.consume == ("kp0",) and plan.last_resort == "kp1"
    plan = plan_fetch(stored(1), per_author=1, now=NOW, matching={"kp0"})
    assert plan.consume == () and plan.last_resort == "kp0"
    assert plan_fetch(stored(3), per_author=1, now=NOW, matching=set()).serve == ()


def test_fetch_narrowed_to_a_pending_deletion_serves_nothing_while_fresh_ones_exist() -> None:
    """Naming the old last resort by id does not resurrect it once fresh ones exist."""
    plan = plan_fetch(stored(3, pending=(0,)), per_author=1, now=NOW, matching={"kp0"})
    assert plan.serve == ()


def test_fetch_of_nothing_serves_nothing() -> None:
    """No key packages: an empty plan."""
    assert plan_fetch([], per_author=1, now=NOW).serve == ()


# --- the per-owner cap ---------------------------------------------------------------------


def test_evictions_are_empty_within_the_cap() -> None:
    """At or below ``max_per_owner`` nothing is evicted."""
    assert evictions(stored(3), max_per_owner=3) == []


def test_evictions_remove_the_oldest_beyond_the_cap() -> None:
    """Storing beyond the cap evicts the owner's oldest."""
    assert evictions(stored(5), max_per_owner=3) == ["kp0", "kp1"]
