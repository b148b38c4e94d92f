"""MLS interop with a third-party client: nostr-sdk (rust-nostr) authenticates with NIP-42
on its own, fetches verifiable key packages and receives NIP-59 gift wraps addressed to it.

nostr-sdk calls back into Python for NIP-42 signing, so the uniffi event loop is pinned to
the test's loop (as in ``tests/relay/test_interop_nostr_sdk.py``).
"""

from __future__ import annotations

import asyncio

import nostr_sdk as sdk
import orjson
import pytest

from tests.conftest import RunningRelay
from tests.support.nostr import TIMEOUT, Keys, RelayClient
from tests.support.nostr_sdk import WAIT, sdk_client, uniffi_loop  # noqa: F401

G = "interop-group"


pytestmark = pytest.mark.usefixtures("uniffi_loop")


def keypackage(keys: sdk.Keys, content: str, created_at: int) -> sdk.Event:
    tags = [sdk.Tag.parse(t) for t in (["mls_protocol_version", "1.0"], ["encoding", "hex"])]
    return (
        sdk.EventBuilder(sdk.Kind(443), content)
        .tags(tags)
        .custom_created_at(sdk.Timestamp.from_secs(created_at))
        .finalize(keys)
    )


def welcome_wrap(sender: sdk.Keys, receiver: sdk.Keys) -> sdk.Event:
    """A NIP-59 gift wrap (throw-away author) around a kind-444 welcome rumor, with ``h``."""
    rumor = sdk.EventBuilder(sdk.Kind(444), "welcome").finalize_unsigned(sender.public_key())
    extra = [sdk.Tag.parse(["h", G])]
    return sdk.nip59_make_gift_wrap(sender, receiver.public_key(), rumor, extra_tags=extra)


def as_dict(event: sdk.Event) -> dict[str, object]:
    result: dict[str, object] = orjson.loads(event.as_json())
    return result


async def fetch(client: sdk.Client, query: sdk.Filter) -> list[sdk.Event]:
    events: list[sdk.Event] = await client.fetch_events(sdk.ReqTarget.auto([query]), WAIT)
    return events


async def test_nostr_sdk_fetches_the_original_verifiable_keypackage(
    running: RunningRelay,
) -> None:
    """nostr-sdk publishes key packages; another nostr-sdk client authenticates on its own,
    fetches the oldest (identical, signature valid), and consumes it."""
    owner, requester = sdk.Keys.generate(), sdk.Keys.generate()
    publisher = await sdk_client(running.url, owner)
    now = sdk.Timestamp.now().as_secs()
    kps = [keypackage(owner, f"{i:02x}" * 32, now - 10 + i) for i in range(2)]
    for event in kps:
        output = await publisher.send_event(event)
        assert output.failed == {} and len(output.success) == 1
    client = await sdk_client(running.url, requester)
    query = sdk.Filter().kind(sdk.Kind(443)).author(owner.public_key())
    (got,) = await fetch(client, query)
    assert got.verify() and as_dict(got) == as_dict(kps[0])
    (again,) = await fetch(client, query)
    assert again.verify() and again.id().to_hex() == kps[1].id().to_hex()
    (last_resort,) = await fetch(client, query)
    assert last_resort.id().to_hex() == kps[1].id().to_hex()
    for c in (publisher, client):
        await c.shutdown()


async def test_nostr_sdk_without_a_signer_gets_no_keypackages(running: RunningRelay) -> None:
    """A nostr-sdk client that cannot authenticate is refused 443 and consumes nothing."""
    owner = Keys()
    oc = await running.client()
    await oc.authenticate(owner)
    kp = owner.sign(443, "0102")
    assert (await oc.publish(kp))[2] is True
    anonymous = await sdk_client(running.url)
    query = sdk.Filter().kind(sdk.Kind(443)).author(sdk.PublicKey.parse(owner.pubkey))
    assert await fetch(anonymous, query) == []
    events, _ = await oc.req("own", {"kinds": [443]})
    assert [e["id"] for e in events] == [kp.id]
    await anonymous.shutdown()


async def test_nostr_sdk_receives_a_gift_wrap_addressed_to_it(running: RunningRelay) -> None:
    """A NIP-59 welcome wrap is delivered live and stored to its recipient, who unwraps it;
    an authenticated eavesdropper and an anonymous client get nothing."""
    sender, receiver, eve = (sdk.Keys.generate() for _ in range(3))
    recipient = await sdk_client(running.url, receiver)
    notifications = recipient.notifications()
    to_me = sdk.Filter().kind(sdk.Kind(1059)).pubkey(receiver.public_key())
    await recipient.subscribe(sdk.ReqTarget.auto([to_me]))

    wrap = welcome_wrap(sender, receiver)
    sending = await sdk_client(running.url, sender)
    output = await sending.send_event(wrap)
    assert output.failed == {} and len(output.success) == 1

    async def next_event() -> sdk.Event:
        while True:
            notification = await notifications.next()
            assert notification is not None
            if notification.is_NEW_EVENT():
                return notification.event

    live = await asyncio.wait_for(next_event(), TIMEOUT)
    assert live.id().to_hex() == wrap.id().to_hex()
    (stored,) = await fetch(recipient, to_me)
    assert stored.verify() and as_dict(stored) == as_dict(wrap)
    unwrapped = sdk.UnwrappedGift.from_gift_wrap(receiver, stored)
    assert unwrapped.sender().to_hex() == sender.public_key().to_hex()
    assert unwrapped.rumor().kind().as_u16() == 444

    eavesdropper = await sdk_client(running.url, eve)
    anonymous = await sdk_client(running.url)
    for client in (eavesdropper, anonymous):
        assert await fetch(client, to_me) == []
        assert await fetch(client, sdk.Filter().id(wrap.id())) == []
        await client.shutdown()
    await sending.shutdown()
    await recipient.shutdown()


async def test_nostr_sdk_gift_wrap_with_h_invites_the_recipient(running: RunningRelay) -> None:
    """A member's nostr-sdk wrap carrying ``h`` makes the recipient a reader of the group."""
    owner, receiver = Keys(), sdk.Keys.generate()
    oc = await running.client()
    await oc.authenticate(owner)
    bootstrap = owner.sign(450, "", [["h", G], ["op", "bootstrap"], ["seq", "1"]])
    assert (await oc.publish(bootstrap))[2] is True
    message = Keys().sign(445, "ciphertext", [["h", G]])
    assert (await oc.publish(message))[2] is True

    recipient = await sdk_client(running.url, receiver)
    in_group = (
        sdk.Filter().kind(sdk.Kind(445)).custom_tag(sdk.SingleLetterTag.from_byte(ord("h")), G)
    )
    assert await fetch(recipient, in_group) == []
    wrap = welcome_wrap(sdk.Keys.generate(), receiver)
    await oc.send_raw('["EVENT",' + wrap.as_json() + "]")
    assert (await oc.recv_until("OK"))[2] is True
    assert [e.id().to_hex() for e in await fetch(recipient, in_group)] == [message.id]
    await recipient.shutdown()


async def test_our_client_reads_what_nostr_sdk_was_sent(running: RunningRelay) -> None:
    """Cross-check with the project's own client: the wrap is stored byte-compatible."""
    sender, receiver = sdk.Keys.generate(), Keys()
    sending = await sdk_client(running.url, sender)
    wrap = welcome_wrap(sender, sdk.Keys.parse(receiver.secret.hex()))
    assert (await sending.send_event(wrap)).failed == {}
    reader: RelayClient = await running.client()
    await reader.authenticate(receiver)
    events, _ = await reader.req("w", {"kinds": [1059], "#p": [receiver.pubkey]})
    assert events == [as_dict(wrap)]
    await sending.shutdown()
