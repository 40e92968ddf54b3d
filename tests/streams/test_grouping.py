"""Insert groups (streams/grouping.py): batches that follow each other share one insert.

The writes go to a real store (chdb and the 18.16 server) through the real ScoredSink; only the
failure test uses a write function that raises, because an insert failing on cue after
classification cannot be arranged on a real server without racing it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import pytest

from finsentry.errors import StoreInterrupted
from finsentry.models.base import Classifier
from finsentry.store import Store
from finsentry.store.sink import ScoredSink
from finsentry.streams.grouping import InsertGroups
from finsentry.streams.lifecycle import DaemonExecutor
from finsentry.streams.processor import BatchResult, BatchScorer
from tests.store.factories import scored


def _scorer(store: Store) -> BatchScorer:
    # store_many never calls the classifier; the worker's scorer holds the real one
    return BatchScorer(cast(Classifier, None), ScoredSink(store), "run-1", "raw")


def _batches(n: int, size: int) -> list[BatchResult]:
    return [BatchResult(scored=[scored(b * size + i) for i in range(size)]) for b in range(n)]


async def _hand_in(groups: InsertGroups, batches: Sequence[BatchResult], coming: list[int],
                   gap_s: float = 0.05) -> list[BatchResult]:
    """Hand batches in one after another, as the classify thread does, with a backlog behind
    them (`coming`); then the backlog ends (the stream went quiet)."""
    tasks = []
    for batch in batches:
        tasks.append(asyncio.ensure_future(groups.store(batch)))
        groups.nudge()
        await asyncio.sleep(gap_s)
    coming[0] = 0
    groups.nudge()
    return list(await asyncio.gather(*tasks))


def _stored(store: Store) -> int:
    return int(store.query("SELECT count() AS n FROM scored_documents "
                           "WHERE run_id = 'run-1'")[0]["n"])


def test_batches_following_each_other_share_one_insert(store: Store) -> None:
    executor = DaemonExecutor("test-store")
    coming = [5]

    async def main() -> list[BatchResult]:
        groups = InsertGroups(_scorer(store).store_many, executor, max_rows=1000,
                              linger_s=30.0, coming=lambda: coming[0])
        results = await _hand_in(groups, _batches(4, 10), coming)
        assert groups.inserts == 1
        return results

    results = asyncio.run(main())
    executor.shutdown()
    assert [r.written for r in results] == [10, 10, 10, 10]
    assert [(r.inserts, r.insert_rows) for r in results] == [(1, 40), (0, 0), (0, 0), (0, 0)]
    assert [len(r.scored) for r in results] == [10, 10, 10, 10]
    assert _stored(store) == 40


def test_max_rows_caps_a_group(store: Store) -> None:
    executor = DaemonExecutor("test-store")
    coming = [5]

    async def main() -> int:
        groups = InsertGroups(_scorer(store).store_many, executor, max_rows=25,
                              linger_s=30.0, coming=lambda: coming[0])
        results = await _hand_in(groups, _batches(4, 10), coming, gap_s=0.0)
        assert sum(r.written for r in results) == 40
        return groups.inserts

    assert asyncio.run(main()) == 2  # [10 + 10], [10 + 10]
    executor.shutdown()
    assert _stored(store) == 40


def test_no_backlog_or_stopping_means_no_wait(store: Store) -> None:
    """A stream the worker keeps up with pays no linger: with at most one batch behind it (or a
    stop begun) a batch is written at once, though linger_s is a minute."""
    executor = DaemonExecutor("test-store")
    stopping = [False]

    async def main() -> tuple[float, float]:
        groups = InsertGroups(_scorer(store).store_many, executor, max_rows=1000,
                              linger_s=60.0, coming=lambda: 1)
        t0 = time.monotonic()
        await groups.store(_batches(1, 5)[0])
        lone = time.monotonic() - t0
        busy = InsertGroups(_scorer(store).store_many, executor, max_rows=1000, linger_s=60.0,
                            coming=lambda: 5, hurry=lambda: stopping[0])
        task = asyncio.ensure_future(busy.store(BatchResult(scored=[scored(100)])))
        await asyncio.sleep(0.3)
        assert not task.done()  # lingering: a backlog is said to be coming
        stopping[0] = True
        busy.nudge()
        t1 = time.monotonic()
        await task
        return lone, time.monotonic() - t1

    lone, stopped = asyncio.run(main())
    executor.shutdown()
    assert lone < 30 and stopped < 30
    assert _stored(store) == 6


def test_a_failed_insert_fails_every_batch_in_it() -> None:
    """None of a failed group's batches gets a result (so none is acked); the next group is
    written as usual."""
    calls: list[int] = []
    fail = threading.Event()
    fail.set()

    def write_many(batches: Sequence[BatchResult]) -> list[BatchResult]:
        calls.append(len(batches))
        if fail.is_set():
            fail.clear()
            raise StoreInterrupted("write interrupted by shutdown")
        return [BatchResult(scored=b.scored, written=len(b.scored)) for b in batches]

    executor = DaemonExecutor("test-store")
    coming = [5]

    async def main() -> list[Any]:
        groups = InsertGroups(write_many, executor, max_rows=1000, linger_s=30.0,
                              coming=lambda: coming[0])
        tasks = []
        for batch in _batches(3, 4)[:2]:
            tasks.append(asyncio.ensure_future(groups.store(batch)))
            await asyncio.sleep(0.05)
        coming[0] = 0
        groups.nudge()
        first = await asyncio.gather(*tasks, return_exceptions=True)
        later = await groups.store(_batches(1, 4)[0])
        return [*first, later]

    outcomes = asyncio.run(main())
    executor.shutdown()
    assert calls == [2, 1]
    assert all(isinstance(o, StoreInterrupted) for o in outcomes[:2])
    assert isinstance(outcomes[2], BatchResult) and outcomes[2].written == 4


@pytest.mark.parametrize("linger", [0.0, 1.0])
def test_worker_settings_accept_the_grouping_knobs(linger: float) -> None:
    from finsentry.config import Settings

    s = Settings.model_validate({"worker": {"insert_max_rows": 512, "insert_linger_s": linger}})
    assert s.worker.insert_max_rows == 512 and s.worker.insert_linger_s == linger
