"""Numbered, transactional schema migrations for the SQLite store.

Each migration runs in one transaction together with the row that records it, so a
crash leaves the schema either before or after a step, never half-way. Append new
steps to :data:`MIGRATIONS`; never edit a released one.
"""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "events, tags and deletions",
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            pubkey TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            d_tag TEXT,
            expires_at INTEGER,
            raw BLOB NOT NULL
        );
        CREATE INDEX events_by_time ON events (created_at DESC, id);
        CREATE INDEX events_by_author ON events (pubkey, created_at DESC);
        CREATE INDEX events_by_kind ON events (kind, created_at DESC);
        CREATE INDEX events_by_author_kind ON events (pubkey, kind, d_tag);
        CREATE INDEX events_by_expiry ON events (expires_at) WHERE expires_at IS NOT NULL;
        CREATE TABLE tags (
            event_seq INTEGER NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX tags_by_value ON tags (name, value, created_at DESC);
        CREATE INDEX tags_by_event ON tags (event_seq);
        CREATE TABLE deletions (
            event_id TEXT NOT NULL,
            pubkey TEXT NOT NULL,
            PRIMARY KEY (event_id, pubkey)
        );
        CREATE TABLE deleted_coords (
            kind INTEGER NOT NULL,
            pubkey TEXT NOT NULL,
            d_tag TEXT NOT NULL,
            until INTEGER NOT NULL,
            PRIMARY KEY (kind, pubkey, d_tag)
        );
        """,
    ),
    (
        2,
        "MLS gateway state: key packages, pending deletions, groups",
        """
        CREATE TABLE keypackages (
            event_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );
        CREATE INDEX keypackages_by_owner ON keypackages (owner, created_at, event_id);
        CREATE TABLE last_resort (
            event_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL
        );
        CREATE TABLE pending_deletions (
            event_id TEXT PRIMARY KEY,
            due_at INTEGER NOT NULL
        );
        CREATE INDEX pending_deletions_by_due ON pending_deletions (due_at);
        CREATE TABLE groups (
            group_id TEXT PRIMARY KEY,
            state BLOB NOT NULL,
            updated_at INTEGER NOT NULL
        );
        """,
    ),
    (
        3,
        "indexes for authors+kinds and kinds filters in NIP-01 order; replaceable lookups",
        """
        DROP INDEX events_by_author_kind;
        DROP INDEX events_by_kind;
        CREATE INDEX events_by_author_kind ON events (pubkey, kind, created_at DESC, id);
        CREATE INDEX events_by_kind ON events (kind, created_at DESC, id);
        CREATE INDEX events_by_coordinate ON events (pubkey, kind, d_tag)
            WHERE d_tag IS NOT NULL;
        """,
    ),
]


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    """Versions already applied to this database."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def apply_migrations(conn: sqlite3.Connection) -> list[int]:
    """Apply every pending migration in order; returns the versions applied now."""
    done = applied_versions(conn)
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, int(time.time())),
            )
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied
