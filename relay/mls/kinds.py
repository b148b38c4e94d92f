"""Event kinds of MLS over Nostr, and which of them are access-controlled (R-A3)."""

from __future__ import annotations

KEYPACKAGE = 443
WELCOME = 444
GROUP_MESSAGE = 445
NOISE_DM = 446
ROSTER = 450
GIFT_WRAP = 1059
KEYPACKAGE_RELAYS = 10051

# Reading or writing these needs an authenticated connection unless delivery is "open".
RESTRICTED = frozenset({KEYPACKAGE, GROUP_MESSAGE, NOISE_DM, ROSTER, GIFT_WRAP, KEYPACKAGE_RELAYS})
# Delivered only to their recipients (p tags) or the connection that published them.
ADDRESSED = frozenset({NOISE_DM, GIFT_WRAP})
# Delivered to the members of their group (h tag).
GROUP_KINDS = frozenset({GROUP_MESSAGE, ROSTER})
# Kept for message_archive_ttl_days, then swept (R-M9).
ARCHIVED = frozenset({GROUP_MESSAGE, NOISE_DM, GIFT_WRAP})
