"""The audit ledger (R-O5): the hash chain (:mod:`.chain`) over a store (:mod:`.base`) that is
a local file (:mod:`.local`) or a Cloud Storage object (:mod:`.gcs`)."""

from mlsgw.ledger.chain import (
    GENESIS,
    KNOWN_GOOD_KEY,
    Ledger,
    Problem,
    Verification,
    default_path,
    principal,
)

__all__ = [
    "GENESIS",
    "KNOWN_GOOD_KEY",
    "Ledger",
    "Problem",
    "Verification",
    "default_path",
    "principal",
]
