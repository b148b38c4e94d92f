"""relay.core.event: the NIP-01 canonical id, BIP-340 signatures and event shape checks."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import nostr_sdk
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.core.event import (
    Event,
    canonical_json,
    compute_id,
    event_from_raw,
    is_addressable,
    is_ephemeral,
    is_replaceable,
    parse_event,
    pubkey_of,
    sign_event,
    verify_signature,
)
from relay.core.reasons import Reason, Rejection
from tests.support.nostr import Keys

ALICE = Keys(bytes.fromhex("11" * 32))
NOW = 1_700_000_000


def reference_canonical(pubkey: str, created_at: int, kind: int, tags: Any, content: str) -> bytes:
    """NIP-01 serialisation as JSON.stringify writes it: no spaces, UTF-8, no \\u escapes
    except for control characters, ``/`` left alone (Python's json with these options)."""
    return json.dumps(
        [0, pubkey, created_at, kind, tags, content], ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def signed(**fields: Any) -> dict[str, Any]:
    """A valid event dict by ALICE with ``fields`` overriding the defaults."""
    base: dict[str, Any] = {"kind": 1, "content": "hi", "tags": [], "created_at": NOW}
    base.update(fields)
    return ALICE.sign(**base).to_dict()


def reason_of(result: Event | Rejection) -> str:
    assert isinstance(result, Rejection), result
    return result.message()


# --- canonical id ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\n", b"\\n"),
        ('"', b'\\"'),
        ("\\", b"\\\\"),
        ("\r", b"\\r"),
        ("\t", b"\\t"),
        ("\b", b"\\b"),
        ("\f", b"\\f"),
    ],
)
def test_canonical_json_escapes_the_nip01_characters(char: str, escaped: bytes) -> None:
    """Each of the seven characters NIP-01 names is written with its two-character escape."""
    out = canonical_json("ab" * 32, NOW, 1, [["t", char]], f"x{char}y")
    assert out.endswith(b'[["t","' + escaped + b'"]],"x' + escaped + b'y"]')


def test_canonical_json_writes_non_ascii_and_slash_verbatim() -> None:
    """Non-ASCII text is UTF-8 bytes (no \\u escapes) and ``/`` is not escaped."""
    content = "é漢字😀\u2028 a/b \x7f"
    out = canonical_json("ab" * 32, NOW, 1, [], content)
    assert out == b'[0,"' + b"ab" * 32 + b'",1700000000,1,[],"' + content.encode() + b'"]'


def test_canonical_json_has_no_whitespace_between_tokens() -> None:
    """The serialisation is compact: ``[0,"<pubkey>",<created_at>,<kind>,<tags>,"<content>"]``."""
    out = canonical_json("ab" * 32, 5, 7, [["e", "x"], ["p", "y", "z"]], "c")
    assert out == b'[0,"' + b"ab" * 32 + b'",5,7,[["e","x"],["p","y","z"]],"c"]'


@given(
    content=st.text(),
    tags=st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=3), max_size=3),
    created_at=st.integers(0, 2**40),
    kind=st.integers(0, 65535),
)
def test_canonical_json_matches_the_reference_serialisation(
    content: str, tags: list[list[str]], created_at: int, kind: int
) -> None:
    """For any text (controls, quotes, astral characters) the bytes equal JSON.stringify's."""
    if any("\ud800" <= c <= "\udfff" for c in content + "".join(sum(tags, []))):
        return  # lone surrogates cannot be UTF-8 encoded; parse_event refuses them
    expected = reference_canonical("ab" * 32, created_at, kind, tags, content)
    assert canonical_json("ab" * 32, created_at, kind, tags, content) == expected


def test_compute_id_is_sha256_of_the_canonical_serialisation() -> None:
    """The id is the lowercase hex sha256 of the canonical bytes."""
    tags = [["t", "a\nb"]]
    expected = hashlib.sha256(reference_canonical("cd" * 32, NOW, 1, tags, 'q"\\')).hexdigest()
    assert compute_id("cd" * 32, NOW, 1, tags, 'q"\\') == expected


def test_event_signed_by_nostr_sdk_with_every_escape_is_accepted() -> None:
    """A third-party implementation's id and signature verify here, escapes and emoji included."""
    keys = nostr_sdk.Keys.generate()
    content = 'line\nquote" back\\ cr\r tab\t bs\b ff\f ctl\x01 é 😀 a/b'
    builder = nostr_sdk.EventBuilder(nostr_sdk.Kind(1), content)
    tag = nostr_sdk.Tag.parse(["t", 'x\ny"z'])
    foreign = builder.tags([tag]).finalize(keys)
    parsed = parse_event(json.loads(foreign.as_json()))
    assert isinstance(parsed, Event)
    assert parsed.id == foreign.id().to_hex()
    assert parsed.content == content
    assert parsed.pubkey == keys.public_key().to_hex()


def test_event_signed_here_verifies_in_nostr_sdk() -> None:
    """Events built by sign_event are accepted by nostr-sdk's own id and signature checks."""
    event = ALICE.sign(1, 'a\n"b"\\ é 😀', [["p", "ab" * 32]])
    foreign = nostr_sdk.Event.from_json(event.raw.decode())
    assert foreign.verify_id() and foreign.verify_signature()


# --- parse_event: accepted ---------------------------------------------------------------


def test_parse_event_accepts_a_valid_event_and_freezes_it() -> None:
    """A well-formed, correctly signed event becomes an Event with tuple tags."""
    obj = signed(tags=[["e", "ab" * 32], ["-"]], content="hello")
    event = parse_event(obj)
    assert isinstance(event, Event)
    assert event.to_dict() == obj
    assert event.tags == (("e", "ab" * 32), ("-",))
    assert json.loads(event.raw) == obj


def test_parse_event_ignores_unknown_extra_fields() -> None:
    """Extra top-level fields do not affect the id; ``raw`` keeps only the NIP-01 fields."""
    obj = signed()
    event = parse_event({**obj, "extra": 1})
    assert isinstance(event, Event)
    assert "extra" not in json.loads(event.raw)


def test_parse_event_without_verify_skips_only_the_signature() -> None:
    """verify=False accepts a bad signature but still checks the id."""
    obj = signed()
    obj["sig"] = "00" * 64
    assert isinstance(parse_event(obj, verify=False), Event)
    obj["content"] = "tampered"
    assert "id does not match" in reason_of(parse_event(obj, verify=False))


# --- parse_event: rejected ---------------------------------------------------------------


def test_parse_event_rejects_a_bad_signature() -> None:
    """A signature by another key (same shape) is ``invalid: bad signature``."""
    obj = signed()
    other = Keys().sign(1, "hi", created_at=NOW)
    obj["sig"] = other.sig
    assert reason_of(parse_event(obj)) == "invalid: bad signature"


def test_parse_event_rejects_a_signature_that_is_not_a_curve_point() -> None:
    """An all-ff signature (not on the curve) is a bad signature, not an exception."""
    obj = signed()
    obj["sig"] = "ff" * 64
    assert reason_of(parse_event(obj)) == "invalid: bad signature"


def test_parse_event_rejects_a_pubkey_that_is_not_on_the_curve() -> None:
    """A well-formed hex pubkey with no curve point fails verification cleanly."""
    assert verify_signature("00" * 32, "ff" * 32, "00" * 64) is False


def test_parse_event_rejects_a_tampered_content() -> None:
    """Changing any signed field breaks the id."""
    for field_name, value in (("content", "other"), ("created_at", NOW + 1), ("kind", 2)):
        obj = signed()
        obj[field_name] = value
        assert reason_of(parse_event(obj)) == "invalid: event id does not match its content"
    obj = signed()
    obj["tags"] = [["t", "x"]]
    assert reason_of(parse_event(obj)) == "invalid: event id does not match its content"


@pytest.mark.parametrize(
    ("field_name", "value", "reason"),
    [
        ("id", "AB" * 32, "invalid: id must be 64 lowercase hex characters"),
        ("id", "ab" * 31, "invalid: id must be 64 lowercase hex characters"),
        ("id", "zz" * 32, "invalid: id must be 64 lowercase hex characters"),
        ("id", "ab" * 32 + "\n", "invalid: id must be 64 lowercase hex characters"),
        ("id", 5, "invalid: id must be 64 lowercase hex characters"),
        ("pubkey", "AB" * 32, "invalid: pubkey must be 64 lowercase hex characters"),
        ("pubkey", "ab" * 33, "invalid: pubkey must be 64 lowercase hex characters"),
        ("pubkey", None, "invalid: pubkey must be 64 lowercase hex characters"),
        ("sig", "AB" * 64, "invalid: sig must be 128 lowercase hex characters"),
        ("sig", "ab" * 63, "invalid: sig must be 128 lowercase hex characters"),
        ("sig", ["ab"], "invalid: sig must be 128 lowercase hex characters"),
        ("created_at", "1700000000", "invalid: created_at must be a non-negative integer"),
        ("created_at", 1.5, "invalid: created_at must be a non-negative integer"),
        ("created_at", 1700000000.0, "invalid: created_at must be a non-negative integer"),
        ("created_at", True, "invalid: created_at must be a non-negative integer"),
        ("created_at", -1, "invalid: created_at must be a non-negative integer"),
        ("kind", "1", "invalid: kind must be an integer between 0 and 65535"),
        ("kind", -1, "invalid: kind must be an integer between 0 and 65535"),
        ("kind", 65536, "invalid: kind must be an integer between 0 and 65535"),
        ("kind", False, "invalid: kind must be an integer between 0 and 65535"),
        ("content", 5, "invalid: content must be a string"),
        ("content", None, "invalid: content must be a string"),
        ("tags", {}, "invalid: tags must be an array of arrays of strings"),
        ("tags", ["e"], "invalid: tags must be an array of arrays of strings"),
        ("tags", [["e", 1]], "invalid: tags must be an array of arrays of strings"),
        ("tags", [["e", None]], "invalid: tags must be an array of arrays of strings"),
        ("tags", [["e", ["x"]]], "invalid: tags must be an array of arrays of strings"),
    ],
)
def test_parse_event_rejects_wrong_types_and_bad_hex(
    field_name: str, value: object, reason: str
) -> None:
    """Each malformed field gets an ``invalid:`` reason naming it; nothing raises."""
    obj = signed()
    obj[field_name] = value
    assert reason_of(parse_event(obj)) == reason


@pytest.mark.parametrize(
    "missing", ["id", "pubkey", "created_at", "kind", "tags", "content", "sig"]
)
def test_parse_event_rejects_a_missing_field(missing: str) -> None:
    """A missing NIP-01 field is ``invalid: missing field <name>``."""
    obj = signed()
    del obj[missing]
    assert reason_of(parse_event(obj)) == f"invalid: missing field {missing}"


@pytest.mark.parametrize("value", [None, [], "event", 1])
def test_parse_event_rejects_non_objects(value: object) -> None:
    """Anything but a JSON object is ``invalid: event must be a JSON object``."""
    assert reason_of(parse_event(value)) == "invalid: event must be a JSON object"


def test_parse_event_rejects_lone_surrogates() -> None:
    """Text that cannot be UTF-8 encoded is refused instead of raising."""
    obj = signed()
    obj["content"] = "\ud800"
    assert reason_of(parse_event(obj)) == "invalid: event is not valid UTF-8 JSON"


def test_parse_event_rejects_an_integer_too_large_to_serialise() -> None:
    """A created_at beyond 64 bits is refused (id cannot be computed) rather than raising."""
    obj = signed()
    obj["created_at"] = 2**70
    result = parse_event(obj)
    assert isinstance(result, Rejection) and result.reason is Reason.INVALID


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none() | st.integers() | st.text(),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=10,
        ),
        max_size=8,
    )
)
def test_parse_event_never_raises_on_arbitrary_objects(obj: dict[str, Any]) -> None:
    """Random JSON objects are always an invalid: Rejection, never an exception."""
    result = parse_event(obj)
    assert isinstance(result, Rejection) and result.reason is Reason.INVALID


# --- helpers -------------------------------------------------------------------------------


def test_sign_event_produces_a_verifiable_event() -> None:
    """sign_event's id matches the canonical id and its signature verifies."""
    event = sign_event(ALICE.secret, kind=7, content="+", tags=[["e", "ab" * 32]], created_at=NOW)
    assert event.pubkey == pubkey_of(ALICE.secret)
    assert event.id == compute_id(event.pubkey, NOW, 7, [["e", "ab" * 32]], "+")
    assert verify_signature(event.id, event.pubkey, event.sig)
    assert isinstance(parse_event(event.to_dict()), Event)


def test_event_from_raw_round_trips() -> None:
    """An event rebuilt from its stored JSON equals the original."""
    event = ALICE.sign(1, "x", [["t", "y"]])
    assert event_from_raw(event.raw) == event


def test_tag_accessors() -> None:
    """tag_values, first_tag_value, has_tag, d_tag, expiration and is_protected read tags."""
    event = ALICE.sign(
        30000, "", [["p", "a"], ["p", "b"], ["d", "slug"], ["expiration", "99"], ["-"], ["x"]]
    )
    assert event.tag_values("p") == ["a", "b"]
    assert event.first_tag_value("p") == "a" and event.first_tag_value("q") is None
    assert event.has_tag("x") and not event.has_tag("q")
    assert event.d_tag == "slug" and event.expiration == 99 and event.is_protected
    plain = ALICE.sign(30000, "", [["expiration", "soon"], ["-", "x"]])
    assert plain.d_tag == "" and plain.expiration is None and not plain.is_protected


@pytest.mark.parametrize(
    ("kind", "replaceable", "ephemeral", "addressable"),
    [
        (0, True, False, False),
        (1, False, False, False),
        (3, True, False, False),
        (9999, False, False, False),
        (10000, True, False, False),
        (19999, True, False, False),
        (20000, False, True, False),
        (29999, False, True, False),
        (30000, False, False, True),
        (39999, False, False, True),
        (40000, False, False, False),
    ],
)
def test_kind_classes(kind: int, replaceable: bool, ephemeral: bool, addressable: bool) -> None:
    """NIP-01 kind ranges, checked at their boundaries."""
    assert is_replaceable(kind) is replaceable
    assert is_ephemeral(kind) is ephemeral
    assert is_addressable(kind) is addressable
