"""Interop with a third-party client: nostr-sdk (rust-nostr) against ``mlsgw serve``, unchanged.

nostr-sdk calls back into Python for NIP-42 signing (its authenticator wraps our
``Keys`` as a foreign signer), so the uniffi event loop is pinned to the test's loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import nostr_sdk as sdk
import pytest

from tests.support.nostr import TIMEOUT, Keys, RelayClient
from tests.support.nostr_sdk import WAIT, sdk_client, uniffi_loop  # noqa: F401
from tests.support.process import ServeProcess, StartServe, base_env, free_port

pytestmark = pytest.mark.usefixtures("uniffi_loop")


def note(keys: sdk.Keys, content: str) -> sdk.Event:
    return sdk.EventBuilder(sdk.Kind(1), content).finalize(keys)


async def allowlisted_relay(serve: StartServe, tmp_path: Path, *pubkeys: str) -> ServeProcess:
    """``mlsgw serve`` with an allowlist and its public URL set (so the relay tag is checked)."""
    port = free_port()
    env = {
        **base_env(tmp_path),
        "PORT": str(port),
        "MLSGW_AUTH__PUBKEY_WHITELIST": ",".join(pubkeys),
        "MLSGW_INFORMATION__RELAY_URL": f"ws://127.0.0.1:{port}",
    }
    relay = await serve(env=env)
    await relay.wait_ready()
    return relay


async def test_nostr_sdk_publishes_and_fetches(serve: StartServe) -> None:
    """send_event is acknowledged and fetch_events returns the identical event."""
    relay = await serve()
    await relay.wait_ready()
    keys = sdk.Keys.generate()
    client = await sdk_client(relay.url)
    event = note(keys, 'hello from rust-nostr: "quotes", \\ and é😀\n')
    output = await client.send_event(event)
    assert output.failed == {} and len(output.success) == 1
    query = sdk.Filter().author(keys.public_key()).kind(sdk.Kind(1))
    fetched = await client.fetch_events(sdk.ReqTarget.auto([query]), WAIT)
    assert [e.id().to_hex() for e in fetched] == [event.id().to_hex()]
    assert fetched[0].content() == event.content() and fetched[0].verify()
    await client.shutdown()


async def test_nostr_sdk_subscription_receives_live_events(serve: StartServe) -> None:
    """A nostr-sdk subscription gets events published later on another connection."""
    relay = await serve()
    await relay.wait_ready()
    author = sdk.Keys.generate()
    subscriber = await sdk_client(relay.url)
    notifications = subscriber.notifications()
    query = sdk.Filter().author(author.public_key())
    await subscriber.subscribe(sdk.ReqTarget.auto([query]))
    publisher = await sdk_client(relay.url)
    event = note(author, "live")
    assert (await publisher.send_event(event)).failed == {}

    async def next_event() -> sdk.Event:
        while True:
            notification = await notifications.next()
            assert notification is not None
            if notification.is_NEW_EVENT():
                return notification.event

    received = await asyncio.wait_for(next_event(), TIMEOUT)
    assert received.id().to_hex() == event.id().to_hex()
    await publisher.shutdown()
    await subscriber.shutdown()


async def test_nostr_sdk_authenticates_with_the_allowlist_on(
    serve: StartServe, tmp_path: Path
) -> None:
    """NIP-42 on its own: a listed key publishes and reads; the event is really stored."""
    keys = sdk.Keys.generate()
    relay = await allowlisted_relay(serve, tmp_path, keys.public_key().to_bech32())
    client = await sdk_client(relay.url, keys)
    event = note(keys, "authenticated publish")
    output = await client.send_event(event)
    assert output.failed == {} and len(output.success) == 1
    query = sdk.Filter().author(keys.public_key())
    fetched = await client.fetch_events(sdk.ReqTarget.auto([query]), WAIT)
    assert [e.id().to_hex() for e in fetched] == [event.id().to_hex()]
    await client.shutdown()
    # Proof from an independent client that the event is stored: AUTH by hand and REQ.
    checker_keys = Keys(bytes.fromhex(keys.secret_key().to_hex()))
    checker = await RelayClient.open(relay.url)
    await checker.authenticate(checker_keys, relay.url)
    stored, _ = await checker.req("check", {"ids": [event.id().to_hex()]})
    assert len(stored) == 1


async def test_nostr_sdk_without_a_listed_key_is_refused(serve: StartServe, tmp_path: Path) -> None:
    """An unlisted key gets ``restricted:``; a client that cannot sign gets ``auth-required:``."""
    listed = sdk.Keys.generate()
    relay = await allowlisted_relay(serve, tmp_path, listed.public_key().to_hex())
    outsider = sdk.Keys.generate()
    client = await sdk_client(relay.url, outsider)
    output = await client.send_event(note(outsider, "let me in"))
    assert output.success == [] and len(output.failed) == 1
    (reason,) = output.failed.values()
    assert reason.startswith("restricted: "), reason
    await client.shutdown()

    anonymous = await sdk_client(relay.url)
    output = await anonymous.send_event(note(outsider, "no signer"))
    assert output.success == [] and len(output.failed) == 1
    (reason,) = output.failed.values()
    assert reason.startswith("auth-required: "), reason
    await anonymous.shutdown()
