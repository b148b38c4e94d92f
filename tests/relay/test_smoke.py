"""A first end-to-end check: publish on one connection, receive live on another."""

from tests.conftest import RunningRelay
from tests.support.nostr import Keys


async def test_subscriber_receives_event_published_on_another_connection(
    running: RunningRelay,
) -> None:
    """An event stored via connection A reaches a live REQ on connection B after EOSE."""
    alice = Keys()
    publisher, subscriber = await running.client(), await running.client()
    events, end = await subscriber.req("live", {"kinds": [1]})
    assert events == [] and end == ["EOSE", "live"]
    event = alice.sign(1, "hello")
    assert await publisher.publish(event) == ["OK", event.id, True, ""]
    message = await subscriber.recv_until("EVENT")
    assert message[1] == "live" and message[2]["id"] == event.id
