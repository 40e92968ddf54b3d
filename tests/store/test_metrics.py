"""Pipeline-health rows: written by a background thread, on both engines, never raising."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace

from finsentry.errors import StoreError
from finsentry.store import Store
from finsentry.store.metrics import (
    MetricsWriter,
    PartitionOffset,
    batch_rows,
    record_batch,
    writer_for,
)

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_batch_rows_compute_lag_per_partition() -> None:
    offsets = [PartitionOffset("raw", 0, 10), PartitionOffset("raw", 0, 12),
               PartitionOffset("raw", 1, 5)]
    high = {("raw", 0): 20, ("raw", 1): None}
    batch, lags = batch_rows("live", "raw", 3, 2, 1, 0.5, offsets,
                             lambda t, p: high[(t, p)], at=AT, worker="w1")
    assert batch["docs_in"] == 3 and batch["stored"] == 2 and batch["dead_lettered"] == 1
    assert batch["rows_per_insert"] == 2 and batch["inserts"] == 1
    # partition 0: last processed 12, next to write 20 -> 7 waiting; partition 1 unknown
    assert [(r["partition"], r["offset"], r["lag"]) for r in lags] == [(0, 12, 7)]


def test_record_batch_writes_both_tables(store: Store) -> None:
    events = [SimpleNamespace(message=SimpleNamespace(topic="raw", partition=p, offset=o))
              for p, o in [(0, 4), (1, 9)]]
    result = SimpleNamespace(written=2, rejected=[object()])
    record_batch(SimpleNamespace(store=store), "live", events, result, 0.25, app=None)
    assert writer_for(store).flush()
    rows = store.query("SELECT worker_id, docs_in, stored, dead_lettered, rows_per_insert "
                       "FROM worker_batches")
    assert len(rows) == 1
    assert rows[0]["docs_in"] == 2 and rows[0]["stored"] == 2 and rows[0]["dead_lettered"] == 1
    assert ":" in rows[0]["worker_id"]  # host:pid
    # no app -> no high watermark -> no lag rows (never a guessed lag)
    assert store.query("SELECT count() AS n FROM consumer_lag")[0]["n"] == 0


class BrokenStore(Store):
    def _execute(self, sql: str) -> None:
        raise StoreError("down")

    def _query(self, sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
        raise StoreError("down")

    def _insert(self, table: str, columns: list[str], rows: list[dict[str, object]]) -> None:
        raise StoreError("down")

    def _close(self) -> None:
        return None


def test_a_failing_store_or_full_queue_never_raises() -> None:
    from finsentry.config import ClickHouseSettings

    broken = BrokenStore(ClickHouseSettings.model_validate({}))
    writer = MetricsWriter(broken, queue_size=1)
    for _ in range(50):
        writer.offer("worker_batches", [{"a": 1}])
    assert writer.flush()
    assert writer.failed >= 1
    assert writer.failed + writer.dropped == 50
    # an idle writer's thread ends; the next row starts another
    idle = MetricsWriter(broken, idle_exit_s=0.05)
    idle.offer("worker_batches", [{"a": 1}])
    assert idle.flush()
    deadline = time.monotonic() + 5
    while idle._thread is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert idle._thread is None
    idle.offer("worker_batches", [{"a": 1}])
    assert idle.flush() and idle.failed == 2
    # record_batch with garbage input swallows the error too
    record_batch(object(), "live", [object()], None, 0.0)
