"""Pipeline-health rows for the Grafana "Pipeline health" dashboard, written off the hot path.

`worker_batches` gets one row per worker batch (documents in, stored, dead-lettered, seconds,
rows per ClickHouse insert) and `consumer_lag` one row per partition the batch read from (last
offset processed, the partition's high watermark, the lag between them). The worker calls
`record_batch(...)` once per batch; it only builds two small dicts and puts them on a bounded
queue that a daemon thread drains into the store. Nothing here may block or fail a batch: a full
queue drops the sample (counted in `dropped`), a failed insert is logged once and forgotten
(metrics are samples, not data: a lost row is a gap in a chart, never a lost document).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from finsentry.records import utcnow
from finsentry.store.base import Row, Store

log = logging.getLogger(__name__)

WORKER_BATCHES_DDL = """
CREATE TABLE IF NOT EXISTS worker_batches (
    worker_id String,
    run_id String,
    batch_at DateTime('UTC'),
    topic String,
    docs_in UInt32,
    stored UInt32,
    dead_lettered UInt32,
    seconds Float32,
    inserts UInt16,
    rows_per_insert UInt32
) ENGINE = MergeTree
PARTITION BY toYYYYMM(batch_at)
ORDER BY (run_id, batch_at, worker_id)
"""

CONSUMER_LAG_DDL = """
CREATE TABLE IF NOT EXISTS consumer_lag (
    worker_id String,
    run_id String,
    at DateTime('UTC'),
    topic String,
    partition UInt32,
    offset UInt64,
    high_watermark UInt64,
    lag UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (topic, partition, at)
"""

QUEUE_SIZE = 1000  # samples waiting for the writer thread; more are dropped, never waited for
IDLE_EXIT_S = 30.0  # the writer thread ends after this long without rows; the next row restarts it
GATHER_S = 1.0  # rows offered within this long of the first go in one insert per table


def worker_id() -> str:
    """host:pid, so two replicas on one host (compose --scale) stay apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class MetricsWriter:
    """Inserts queued metric rows from a daemon thread; `offer` never blocks."""

    store: Store
    queue_size: int = QUEUE_SIZE
    dropped: int = 0
    failed: int = 0
    _queue: queue.Queue[tuple[str, list[Row]]] = field(init=False)
    idle_exit_s: float = IDLE_EXIT_S
    gather_s: float = GATHER_S
    _thread: threading.Thread | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=self.queue_size)

    def offer(self, table: str, rows: list[Row]) -> None:
        if not rows:
            return
        try:
            self._queue.put_nowait((table, rows))
        except queue.Full:
            self.dropped += 1
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="finsentry-metrics",
                                                daemon=True)
                self._thread.start()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued row was tried (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _drain(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_exit_s)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():  # offer() restarts a thread for the next row
                        self._thread = None
                        return
                continue
            items = [first, *self._gather()]
            try:
                self._write(items)
            finally:
                for _ in items:
                    self._queue.task_done()

    def _gather(self) -> list[tuple[str, list[Row]]]:
        """What else arrives within gather_s: a ClickHouse insert has a fixed cost (a part per
        insert, ~55 ms of CPU on embedded chdb), so one per table per second, not per batch."""
        items: list[tuple[str, list[Row]]] = []
        deadline = time.monotonic() + self.gather_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                items.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return items

    def _write(self, items: list[tuple[str, list[Row]]]) -> None:
        by_table: dict[str, list[list[Row]]] = {}
        for table, rows in items:
            by_table.setdefault(table, []).append(rows)
        for table, parts in by_table.items():
            try:
                self.store.insert(table, [row for rows in parts for row in rows], retry=False)
            except Exception as exc:  # a metrics row must never take anything down
                before, self.failed = self.failed, self.failed + len(parts)
                if before == 0 or before // 100 != self.failed // 100:
                    log.warning("metrics insert into %s failed (%d so far): %s", table,
                                self.failed, exc)


_writers: dict[int, MetricsWriter] = {}
_writers_lock = threading.Lock()


def _registered(store: object) -> MetricsWriter | None:
    """The writer of this very store object (an id can be reused after a store is gone);
    call with _writers_lock held."""
    found = _writers.get(id(store))
    return found if found is not None and found.store is store else None


def writer_for(store: Store) -> MetricsWriter:
    """One writer (and thread) per store object."""
    with _writers_lock:
        found = _registered(store)
        if found is None:
            found = _writers[id(store)] = MetricsWriter(store)
        return found


def flush_metrics(store: object, timeout_s: float = 3.0) -> None:
    """At a worker's exit: write the rows still gathered for `store` (if it has a writer)."""
    with _writers_lock:
        found = _registered(store)
    if found is not None:
        found.flush(timeout_s)


@dataclass(frozen=True)
class PartitionOffset:
    topic: str
    partition: int
    offset: int  # last offset processed in this batch


def batch_rows(run_id: str, topic: str, docs_in: int, stored: int, dead_lettered: int,
               seconds: float, offsets: Iterable[PartitionOffset],
               highwater: Callable[[str, int], int | None], *, at: datetime | None = None,
               worker: str | None = None, inserts: int | None = None,
               insert_rows: int | None = None) -> tuple[Row, list[Row]]:
    """The worker_batches row and the consumer_lag rows of one batch.

    Batches that shared one insert: the first carries it (inserts 1, rows_per_insert = the
    insert's rows), the others 0 and 0, so sum(rows_per_insert) / sum(inserts) stays the mean
    rows per insert; by default a batch is its own insert."""
    at = at or utcnow()
    worker = worker or worker_id()
    batch = {"worker_id": worker, "run_id": run_id, "batch_at": at, "topic": topic,
             "docs_in": docs_in, "stored": stored, "dead_lettered": dead_lettered,
             "seconds": float(seconds),
             "inserts": (1 if stored else 0) if inserts is None else inserts,
             "rows_per_insert": stored if insert_rows is None else insert_rows}
    latest: dict[tuple[str, int], int] = {}
    for item in offsets:
        key = (item.topic, item.partition)
        latest[key] = max(latest.get(key, -1), item.offset)
    lags = []
    for (tp_topic, partition), offset in sorted(latest.items()):
        high = highwater(tp_topic, partition)
        if high is None or high < 0:
            continue
        lags.append({"worker_id": worker, "run_id": run_id, "at": at, "topic": tp_topic,
                     "partition": partition, "offset": offset, "high_watermark": high,
                     "lag": max(0, high - offset - 1)})
    return batch, lags


def record_batch(sink: Any, run_id: str, events: Sequence[Any], result: Any, seconds: float,
                 app: Any = None) -> None:
    """The worker's one call per batch: queue its metric rows; never raises, never blocks.

    `events` are Faust events (message.topic/partition/offset), `result` a BatchResult, `app`
    the Faust app whose consumer knows each partition's high watermark.
    """
    try:
        store = getattr(sink, "store", None)
        if not isinstance(store, Store):
            return
        offsets = [PartitionOffset(str(e.message.topic), int(e.message.partition),
                                   int(e.message.offset)) for e in events]
        topic = offsets[0].topic if offsets else ""
        batch, lags = batch_rows(run_id, topic, len(events), int(result.written),
                                 len(result.rejected), seconds, offsets,
                                 lambda t, p: _highwater(app, t, p),
                                 inserts=getattr(result, "inserts", None),
                                 insert_rows=getattr(result, "insert_rows", None))
        writer = writer_for(store)
        writer.offer("worker_batches", [batch])
        writer.offer("consumer_lag", lags)
    except Exception as exc:  # pragma: no cover - defensive: metrics never fail a batch
        log.debug("batch metrics skipped: %s", exc)


def _highwater(app: Any, topic: str, partition: int) -> int | None:
    if app is None:
        return None
    from faust.types import TP

    value = app.consumer.highwater(TP(topic, partition))
    return int(value) if value is not None else None
