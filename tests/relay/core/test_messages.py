"""relay.core.messages: decoding client frames (never raising) and encoding relay frames."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.core import messages as m
from relay.core.filters import Filter
from relay.core.reasons import Reason


def test_event_frame_is_an_event_message() -> None:
    """``["EVENT", {...}]`` carries the object for the session to validate."""
    msg = m.parse_client_message(b'["EVENT",{"id":"x"}]')
    assert msg == m.EventMessage({"id": "x"})


def test_req_frame_parses_every_filter() -> None:
    """``["REQ", id, f1, f2]`` becomes a ReqMessage with two parsed filters."""
    msg = m.parse_client_message(b'["REQ","s",{"kinds":[1]},{"#t":["x"],"limit":3}]')
    assert msg == m.ReqMessage(
        m.SubId("s"),
        (Filter(kinds=frozenset({1})), Filter(tags=(("t", frozenset({"x"})),), limit=3)),
    )


def test_count_frame_is_a_count_message() -> None:
    """NIP-45 ``["COUNT", id, filter]`` parses like REQ."""
    msg = m.parse_client_message('["COUNT","c",{}]')
    assert msg == m.CountMessage(m.SubId("c"), (Filter(),))


def test_close_and_auth_frames() -> None:
    """CLOSE takes a sub id; AUTH takes one event object."""
    assert m.parse_client_message('["CLOSE","s"]') == m.CloseMessage(m.SubId("s"))
    assert m.parse_client_message('["AUTH",{"kind":22242}]') == m.AuthMessage({"kind": 22242})


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        (b"", "could not parse message as JSON"),
        (b"not json", "could not parse message as JSON"),
        (b'["EVENT",', "could not parse message as JSON"),
        (b"\xff\xfe", "could not parse message as JSON"),
        (b"{}", "message must be a JSON array starting with a command string"),
        (b"[]", "message must be a JSON array starting with a command string"),
        (b"[1]", "message must be a JSON array starting with a command string"),
        (b'"EVENT"', "message must be a JSON array starting with a command string"),
        (b'["EVENT"]', "EVENT takes exactly one event"),
        (b'["EVENT",{},{}]', "EVENT takes exactly one event"),
        (b'["EVENT",[]]', "EVENT must carry a JSON object"),
        (b'["REQ"]', "REQ needs a subscription id string"),
        (b'["REQ",1,{}]', "REQ needs a subscription id string"),
        (b'["COUNT",null,{}]', "COUNT needs a subscription id string"),
        (b'["CLOSE"]', "CLOSE takes exactly one subscription id string"),
        (b'["CLOSE",1]', "CLOSE takes exactly one subscription id string"),
        (b'["CLOSE","a","b"]', "CLOSE takes exactly one subscription id string"),
        (b'["AUTH"]', "AUTH must carry one signed event object"),
        (b'["AUTH","challenge"]', "AUTH must carry one signed event object"),
        (b'["HELLO"]', "unknown command 'HELLO'"),
        (b'["event",{}]', "unknown command 'event'"),
    ],
)
def test_malformed_frames_become_notices(frame: bytes, detail: str) -> None:
    """Frames without a subscription or event id become a Malformed for a NOTICE."""
    msg = m.parse_client_message(frame)
    assert msg == m.Malformed(detail)


def test_unknown_command_is_truncated_in_the_notice() -> None:
    """A huge unknown command name is not echoed back in full."""
    msg = m.parse_client_message(json.dumps(["X" * 10_000]))
    assert isinstance(msg, m.Malformed) and len(msg.detail) < 100


def test_req_without_filters_names_the_subscription() -> None:
    """A REQ with no filter is Malformed with the sub id, so it is answered by CLOSED."""
    msg = m.parse_client_message('["REQ","s"]')
    assert msg == m.Malformed("REQ needs at least one filter", sub_id=m.SubId("s"), verb="REQ")


def test_req_with_a_bad_filter_carries_the_invalid_rejection() -> None:
    """A bad filter keeps the sub id and an ``invalid:`` rejection for the CLOSED."""
    msg = m.parse_client_message('["REQ","s",{"kinds":[1]},{"ids":["xyz"]}]')
    assert isinstance(msg, m.Malformed)
    assert msg.sub_id == "s" and msg.rejection is not None
    assert msg.rejection.reason is Reason.INVALID
    assert msg.rejection.message().startswith("invalid: filter field ids")


def test_event_id_hint_reads_only_short_string_ids() -> None:
    """OK replies echo the claimed id only when it is a plausible string."""
    assert m.event_id_hint({"id": "ab" * 32}) == "ab" * 32
    assert m.event_id_hint({"id": "x" * 65}) is None
    assert m.event_id_hint({"id": 5}) is None
    assert m.event_id_hint({}) is None
    assert m.event_id_hint([]) is None


def test_encoders_write_nip01_frames() -> None:
    """Relay-to-client frames have the NIP-01 shapes."""
    assert json.loads(m.encode_ok("ab", True)) == ["OK", "ab", True, ""]
    assert json.loads(m.encode_ok("ab", False, "invalid: x")) == ["OK", "ab", False, "invalid: x"]
    assert json.loads(m.encode_eose("s")) == ["EOSE", "s"]
    assert json.loads(m.encode_closed("s", "error: x")) == ["CLOSED", "s", "error: x"]
    assert json.loads(m.encode_notice("hi")) == ["NOTICE", "hi"]
    assert json.loads(m.encode_auth("c")) == ["AUTH", "c"]
    assert json.loads(m.encode_count("s", 3)) == ["COUNT", "s", {"count": 3}]


def test_encode_event_embeds_the_stored_json_verbatim() -> None:
    """``["EVENT", sub, raw]`` reuses the raw bytes and escapes the sub id."""
    raw = b'{"id":"x","content":"\\u0001"}'
    frame = m.encode_event('a"b', raw)
    assert frame == b'["EVENT","a\\"b",' + raw + b"]"
    assert json.loads(frame) == ["EVENT", 'a"b', {"id": "x", "content": "\x01"}]


def test_encode_events_is_encode_event_for_each_stored_json() -> None:
    """A REQ answer's frames are what encode_event gives for each event, in order."""
    raws = [b'{"id":"1"}', b'{"id":"2","content":"\\u00e9"}']
    assert list(m.encode_events("s\u00e9", raws)) == [m.encode_event("s\u00e9", r) for r in raws]
    assert list(m.encode_events("s", [])) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
commands = st.sampled_from(["EVENT", "REQ", "COUNT", "CLOSE", "AUTH", "NOPE", ""])


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(frame: bytes) -> None:
    """Any byte string decodes to a ClientMessage without raising."""
    m.parse_client_message(frame)


@given(commands, st.lists(json_values, max_size=4))
def test_random_command_arrays_never_raise(command: str, rest: list[object]) -> None:
    """Arrays that start with a known command and carry arbitrary JSON never raise."""
    msg = m.parse_client_message(json.dumps([command, *rest]))
    assert isinstance(
        msg,
        m.EventMessage
        | m.ReqMessage
        | m.CountMessage
        | m.CloseMessage
        | m.AuthMessage
        | m.Malformed,
    )
