"""ClickHouse store: one interface, two transports (clickhouse-driver, chdb), the same SQL.

`open_store(settings)` gives a NativeStore when `clickhouse.host` is set, else the embedded chdb
store at `clickhouse.chdb_path`. `migrate(store)` brings the schema up to date (idempotent);
`ScoredSink(store).write(docs)` stores scored documents exactly once per (run_id, doc_id).
A Store serialises its calls with a lock: share it with one worker thread (e.g. an executor).
"""

from __future__ import annotations

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreError
from finsentry.store.base import Store, bind
from finsentry.store.migrations import MIGRATIONS, Migration, applied_versions, migrate
from finsentry.store.queries import (
    count_documents,
    sentiment_counts,
    sentiment_over_time,
    topic_counts,
)
from finsentry.store.sink import ScoredSink, scored_row


def open_store(settings: ClickHouseSettings) -> Store:
    """The store `settings` describe: native protocol when host is set, else embedded chdb."""
    if settings.host:
        from finsentry.store.native import NativeStore

        return NativeStore(settings)
    from finsentry.store.embedded import EmbeddedStore

    return EmbeddedStore(settings)


__all__ = [
    "MIGRATIONS", "Migration", "ScoredSink", "Store", "StoreError", "applied_versions", "bind",
    "count_documents", "migrate", "open_store", "scored_row", "sentiment_counts",
    "sentiment_over_time", "topic_counts",
]
