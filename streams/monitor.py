"""What the worker tells its health endpoint: metrics per batch, and whether its consumer works.

The consumer check fails when the group coordinator died, when no partition has been assigned
for `health.stall_after_s`, or when assigned partitions have lag but no batch finished for that
long. Faust state is read from the health thread without locks: reads only, and a stale value
costs one check interval.
"""

from __future__ import annotations

import time
from typing import Any

from finsentry.health import HealthServer
from finsentry.streams.processor import ProcessorStats
from finsentry.streams.rebalance import coordinator_failure


class WorkerMonitor:
    def __init__(self, health: HealthServer, stall_after_s: float) -> None:
        self.health = health
        self.stall_after_s = stall_after_s
        self.app: Any = None
        self._seen = ProcessorStats()
        self._unassigned_since: float | None = time.monotonic()
        self._retries = 0

    def on_app(self, app: Any) -> None:
        self.app = app

    def on_batch(self, stats: ProcessorStats, elapsed_s: float) -> None:
        m, seen = self.health.metrics, self._seen
        m.documents_in.inc(stats.messages - seen.messages)
        m.documents_stored.inc(stats.written - seen.written)
        m.dead_lettered.inc(stats.rejected - seen.rejected)
        m.batch_latency.observe(elapsed_s)
        seen.messages, seen.written, seen.rejected = stats.messages, stats.written, stats.rejected

    def count_retries(self, total: int) -> None:
        if total > self._retries:
            self.health.metrics.retries.inc(total - self._retries)
            self._retries = total

    def lag(self) -> int | None:
        consumer = getattr(self.app, "consumer", None)
        if consumer is None:
            return None
        total = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            committed = consumer._committed_offset.get(tp) or 0
            if high is not None:
                total += max(0, int(high) - int(committed))
        return total

    def check(self, stats: ProcessorStats) -> str | None:
        if self.app is None:
            return "worker not started yet"
        dead = coordinator_failure(self.app)
        if dead:
            return dead
        now = time.monotonic()
        try:
            assigned = self.app.consumer.assignment()
            lag = self.lag()
        except Exception:  # consumer not started yet (joining the group)
            assigned, lag = set(), None
        if lag is not None:
            self.health.metrics.consumer_lag.set(lag)
        if not assigned:
            if self._unassigned_since is None:
                self._unassigned_since = now
            if now - self._unassigned_since > self.stall_after_s:
                return f"no partitions assigned for {now - self._unassigned_since:.0f}s"
            return None
        self._unassigned_since = None
        idle = now - stats.last_activity
        if lag and idle > self.stall_after_s:
            return f"no batch finished for {idle:.0f}s with {lag} messages waiting"
        return None
