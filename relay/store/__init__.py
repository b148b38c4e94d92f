"""Event stores: the :class:`~relay.store.base.EventStore` interface and its implementations."""
