"""The crawler's persistent state in one SQLite file (stdlib sqlite3, WAL).

One file on purpose: marking a story as seen and putting it in the disk buffer (outbox) happen in
the same transaction, so a crash or a broker outage can neither lose nor re-emit a document.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (
    content_hash TEXT PRIMARY KEY, doc_id TEXT NOT NULL, seen_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at_idx ON seen(seen_at);
CREATE TABLE IF NOT EXISTS validators (
    url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS stories (
    doc_id TEXT PRIMARY KEY, cluster_id TEXT NOT NULL, published_ts REAL NOT NULL,
    added_at REAL NOT NULL, signature BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS stories_cluster ON stories(cluster_id, published_ts);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB,
    value BLOB NOT NULL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT);
CREATE TABLE IF NOT EXISTS parked (
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL,
    reason TEXT NOT NULL, parked_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (
    source TEXT PRIMARY KEY, fetched INTEGER NOT NULL DEFAULT 0, new INTEGER NOT NULL DEFAULT 0,
    duplicate INTEGER NOT NULL DEFAULT 0, near_duplicate INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, dead_lettered INTEGER NOT NULL DEFAULT 0,
    not_modified INTEGER NOT NULL DEFAULT 0, runs INTEGER NOT NULL DEFAULT 0,
    last_run REAL, last_success REAL, last_error TEXT, last_error_at REAL);
"""

METRIC_COUNTERS = ("fetched", "new", "duplicate", "near_duplicate", "failed", "dead_lettered",
                   "not_modified", "runs")


class StateStore:
    """Thread-safe wrapper over one SQLite connection; `transaction()` serialises writers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                     timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return list(self._conn.execute(sql, params).fetchall())

    # -- seen / hashes ----------------------------------------------------------------------
    def is_seen(self, doc_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM seen WHERE doc_id = ?", (doc_id,)))

    def hash_owner(self, content_hash: str) -> str | None:
        rows = self.query("SELECT doc_id FROM hashes WHERE content_hash = ?", (content_hash,))
        return rows[0][0] if rows else None

    @staticmethod
    def mark_seen(conn: sqlite3.Connection, doc_id: str, content_hash: str | None,
                  source: str) -> None:
        now = time.time()
        conn.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (doc_id, source, now))
        if content_hash:
            conn.execute("INSERT OR IGNORE INTO hashes VALUES (?, ?, ?)",
                         (content_hash, doc_id, now))

    def prune(self, retention_s: float, story_retention_s: float) -> None:
        cutoff = time.time() - retention_s
        with self.transaction() as conn:
            conn.execute("DELETE FROM seen WHERE seen_at < ?", (cutoff,))
            conn.execute("DELETE FROM hashes WHERE seen_at < ?", (cutoff,))
            conn.execute("DELETE FROM stories WHERE added_at < ?",
                         (time.time() - story_retention_s,))

    # -- conditional GET validators (fetcher.ValidatorStore) ---------------------------------
    def get_validators(self, url: str) -> tuple[str | None, str | None]:
        rows = self.query("SELECT etag, last_modified FROM validators WHERE url = ?", (url,))
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def set_validators(self, url: str, etag: str | None, last_modified: str | None) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO validators VALUES (?, ?, ?, ?)",
                         (url, etag, last_modified, time.time()))

    # -- outbox (the disk buffer in front of Kafka) ------------------------------------------
    @staticmethod
    def enqueue(conn: sqlite3.Connection, topic: str, key: bytes | None, value: bytes) -> None:
        conn.execute("INSERT INTO outbox (topic, key, value, created_at) VALUES (?, ?, ?, ?)",
                     (topic, key, value, time.time()))

    def pending(self, limit: int) -> list[tuple[int, str, bytes | None, bytes]]:
        rows = self.query("SELECT seq, topic, key, value FROM outbox ORDER BY seq LIMIT ?",
                          (limit,))
        return [(int(r[0]), str(r[1]), r[2], bytes(r[3])) for r in rows]

    def pending_count(self) -> int:
        return int(self.query("SELECT count(*) FROM outbox")[0][0])

    def delivered(self, seqs: list[int]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def park(self, seq: int, reason: str) -> None:
        """Move a message the broker will never accept out of the outbox (kept for inspection)."""
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO parked SELECT seq, topic, key, value, ?, ? "
                         "FROM outbox WHERE seq = ?", (reason[:1000], time.time(), seq))
            conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def parked_count(self) -> int:
        return int(self.query("SELECT count(*) FROM parked")[0][0])

    def delivery_failed(self, seqs: list[int], error: str) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                [(error[:500], s) for s in seqs])

    # -- metrics ------------------------------------------------------------------------------
    def bump(self, source: str, **counts: int) -> None:
        cols = [c for c in counts if c in METRIC_COUNTERS]
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO metrics (source) VALUES (?)", (source,))
            if cols:
                sets = ", ".join(f"{c} = {c} + ?" for c in cols)
                conn.execute(f"UPDATE metrics SET {sets} WHERE source = ?",
                             (*[counts[c] for c in cols], source))

    def mark_run(self, source: str, ok: bool, error: str | None = None) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO metrics (source) VALUES (?)", (source,))
            conn.execute("UPDATE metrics SET last_run = ? WHERE source = ?", (now, source))
            if ok:
                conn.execute("UPDATE metrics SET last_success = ? WHERE source = ?",
                             (now, source))
            if error:
                conn.execute("UPDATE metrics SET last_error = ?, last_error_at = ? "
                             "WHERE source = ?", (error[:1000], now, source))

    def metrics(self) -> list[dict[str, Any]]:
        with self.lock:
            cur = self._conn.execute("SELECT * FROM metrics ORDER BY source")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
