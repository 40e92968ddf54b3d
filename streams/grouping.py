"""Insert groups: classified batches that would follow each other into ClickHouse share ONE insert.

A ClickHouse insert has a fixed cost whatever its size: a new part per table and per
materialized view, the merges that follow, the sink's duplicate check. Measured here, embedded
chdb spends ~55 ms of CPU per insert plus ~0.1 ms per row, so one insert per 64-document batch
cost the worker a fifth of its classifier's CPU, taken from the classifier on a busy machine.
The same policy as Kafka's producer (linger.ms, batch.size) and ClickHouse's own asynchronous
inserts (async_insert_busy_timeout_ms, async_insert_max_data_size), applied one step earlier,
where acks are still the worker's to give:

- a classified batch waits, at most `linger_s`, for the batches behind it while a backlog is
  queued for the classifier (`coming()`: at least BACKLOG batches taken and not yet
  classified): the worker is then saturated, and the wait costs latency it cannot avoid
  anyway, not throughput; every batch waiting then goes in one insert of at most `max_rows`;
- without a backlog (a trickle, half load, the end of a burst, a stop) a batch is written at
  once, so a stream the worker keeps up with pays no extra latency; `linger_s = 0` writes each
  batch as soon as the store is free (batches that queued while it was busy still share one);
- each batch still gets its own result, and the worker sends and acks batch by batch, in order,
  only after the insert holding it landed. A failed insert fails every batch in it: none of
  them is acked, so all are re-delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from finsentry.streams.processor import BatchResult

__all__ = ["InsertGroups"]

WriteMany = Callable[[Sequence[BatchResult]], list[BatchResult]]
BACKLOG = 2  # batches waiting for the classifier that make a group wait for them


@dataclass
class _Waiting:
    batch: BatchResult
    done: asyncio.Future[BatchResult]
    since: float


class InsertGroups:
    """Collects classified batches (event loop side) and writes them in groups on `executor`."""

    def __init__(self, write_many: WriteMany, executor: Executor, max_rows: int,
                 linger_s: float, coming: Callable[[], int],
                 hurry: Callable[[], bool] = lambda: False) -> None:
        self.write_many = write_many
        self.executor = executor
        self.max_rows = max_rows
        self.linger_s = linger_s
        self.coming = coming  # batches taken and not yet classified
        self.hurry = hurry  # True when stopping: no more waiting
        self._waiting: deque[_Waiting] = deque()
        self._arrived = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self.inserts = 0  # groups written (for tests and progress)

    async def store(self, batch: BatchResult) -> BatchResult:
        """Queue one classified batch; returns its result once the insert holding it landed."""
        done: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(batch, done, time.monotonic()))
        self._arrived.set()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return await done

    def nudge(self) -> None:
        """Re-check the waiting group now (a batch stopped coming, a stop began)."""
        self._arrived.set()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            await self._linger()
            group = self._take()
            try:
                results = await loop.run_in_executor(self.executor, self.write_many,
                                                     [w.batch for w in group])
            except BaseException as exc:  # every batch of the group fails, none is acked
                for w in group:
                    if not w.done.done():
                        w.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.inserts += 1
            for w, result in zip(group, results, strict=True):
                if not w.done.done():
                    w.done.set_result(result)

    async def _linger(self) -> None:
        """Wait while a backlog is coming, up to linger_s from the oldest waiting batch."""
        deadline = self._waiting[0].since + self.linger_s
        while (sum(len(w.batch.scored) for w in self._waiting) < self.max_rows
               and self.coming() >= BACKLOG and not self.hurry()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[_Waiting]:
        """The oldest waiting batches, at least one, together at most max_rows rows."""
        group = [self._waiting.popleft()]
        rows = len(group[0].batch.scored)
        while self._waiting and rows + len(self._waiting[0].batch.scored) <= self.max_rows:
            w = self._waiting.popleft()
            rows += len(w.batch.scored)
            group.append(w)
        return group
