"""Helpers for driving nostr-sdk (rust-nostr's Python bindings) in tests.

nostr-sdk calls back into Python for NIP-42 signing, so its uniffi event loop must be the
test's loop: modules using it declare ``pytestmark = pytest.mark.usefixtures("uniffi_loop")``
and import the fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import nostr_sdk as sdk
import pytest

from tests.support.nostr import TIMEOUT

WAIT = timedelta(seconds=TIMEOUT)


@pytest.fixture
async def uniffi_loop() -> AsyncIterator[None]:
    """nostr-sdk's Python callbacks (the NIP-42 signer) run on this test's event loop."""
    sdk.uniffi_set_event_loop(asyncio.get_running_loop())
    yield
    sdk.uniffi_set_event_loop(None)  # type: ignore[arg-type, unused-ignore]


async def sdk_client(url: str, keys: sdk.Keys | None = None) -> sdk.Client:
    """A connected nostr-sdk client; with ``keys`` it answers NIP-42 challenges itself."""
    builder = sdk.ClientBuilder()
    if keys is not None:
        builder = builder.authenticator(sdk.SignerAuthenticator(keys))
    client = builder.build()
    await client.add_relay(sdk.RelayUrl.parse(url))
    await client.connect(WAIT)
    return client
