"""Google Cloud adapters: :mod:`.base` is the interface, one module per API implements it."""
