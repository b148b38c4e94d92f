"""The MLS gateway rules (SPEC §4): pure decisions plus the gateway that applies them."""
