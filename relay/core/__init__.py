"""The relay's protocol core: pure functions and state machines, no sockets, no asyncio."""
