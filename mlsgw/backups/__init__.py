"""Backups and restores (R-K4, R-K5): Firestore exports to Cloud Storage, managed backups,
and the restore procedures. Pure planning lives in ``naming``, ``inventory``, ``redact`` and
``plan``; ``backup``, ``restore`` and ``restore_new`` run them against the adapters."""
