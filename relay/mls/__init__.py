"""The MLS gateway rules (SPEC §4): pure decisions only; `relay/gateway.py` applies them."""
