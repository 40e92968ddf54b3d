"""The faust-streaming worker: raw topic -> batched classify + store -> scored topic.

At-least-once: `take_events` acks a batch only after the loop body finished, i.e. after the
ClickHouse insert and the scored/dead-letter sends were confirmed; a crash before that re-delivers
the batch, and the idempotent sink keeps queries duplicate-free.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from finsentry.config import Settings
from finsentry.models.base import Classifier
from finsentry.store.metrics import record_batch
from finsentry.streams.processor import (
    BatchScorer,
    ProcessorStats,
    RawMessage,
    SinkProtocol,
    decode_batch,
)

log = logging.getLogger(__name__)


@dataclass
class StopPolicy:
    """When a worker stops by itself (tests, demo, replays); all None = run until signalled."""

    max_seconds: float | None = None
    idle_exit_s: float | None = None
    expect_messages: int | None = None

    def reason(self, stats: ProcessorStats) -> str | None:
        now = time.monotonic()
        if self.expect_messages is not None and stats.messages >= self.expect_messages:
            return f"processed {stats.messages} messages"
        if self.max_seconds is not None and now - stats.started_at >= self.max_seconds:
            return f"time limit {self.max_seconds}s"
        if self.idle_exit_s is not None and now - stats.last_activity >= self.idle_exit_s:
            return f"idle for {self.idle_exit_s}s"
        return None


def faust_broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hp.strip()}" for hp in bootstrap.split(",") if hp.strip()]


def build_app(settings: Settings, scorer: BatchScorer, stats: ProcessorStats,
              executor: ThreadPoolExecutor) -> Any:
    """Create the Faust app with one batching agent; topics must already exist."""
    import faust

    k, w = settings.kafka, settings.worker
    app = faust.App(
        w.app_id,
        broker=faust_broker_urls(k.bootstrap_servers),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=max(0.5, k.session_timeout_s / 4),
        broker_request_timeout=max(k.request_timeout_s, k.session_timeout_s + 5),
        broker_rebalance_timeout=max(10.0, k.session_timeout_s * 3),
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=w.commit_interval_s,
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        topic_allow_declare=False,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_max_request_size=2 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
        web_enabled=w.web_port is not None,
        web_port=w.web_port or 6066,
        stream_wait_empty=False,
        loghandlers=[],
    )
    raw = app.topic(k.raw_topic, value_serializer="raw", key_serializer="raw",
                    partitions=k.partitions, internal=False)
    scored_topic = app.topic(k.scored_topic, value_serializer="raw", key_serializer="raw",
                             partitions=k.partitions)
    dlq = app.topic(k.dead_letter_topic, value_serializer="raw", key_serializer="raw",
                    partitions=k.dead_letter_partitions)

    @app.agent(raw, name="score")
    async def score(stream: Any) -> None:
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(w.batch_size, within=w.batch_max_wait_s):
            stats.begin()
            messages = [
                RawMessage(e.message.value, e.message.topic, e.message.partition,
                           e.message.offset)
                for e in events
            ]
            docs, rejected = decode_batch(messages)
            started = time.monotonic()
            result = await loop.run_in_executor(executor, scorer.score_and_store, docs)
            elapsed = time.monotonic() - started
            result.rejected[:0] = rejected
            pending = [
                await scored_topic.send(key=s.document.id.encode(), value=s.to_json())
                for s in result.scored
            ]
            for r in result.rejected:
                log.warning("dead-lettered a message from %s: %s", k.raw_topic, r.reason)
                pending.append(await dlq.send(key=r.key, value=r.envelope))
            # wait for the broker's acks before take_events acks the batch's offsets
            await asyncio.gather(*pending)
            stats.add(len(events), result, elapsed)
            record_batch(scorer.sink, w.run_id, events, result, elapsed, app)  # never raises

    return app


def run_worker(settings: Settings, classifier: Classifier, sink: SinkProtocol,
               stop: StopPolicy | None = None, loglevel: str = "WARNING",
               on_progress: Any = None) -> ProcessorStats:
    """Run one Faust worker in this process until signalled or `stop` says so."""
    import faust

    stop = stop or StopPolicy()
    stats = ProcessorStats()
    scorer = BatchScorer(classifier, sink, settings.worker.run_id, settings.kafka.raw_topic,
                         settings.clickhouse.retry_max_wait_s)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finsentry-score")
    app = build_app(settings, scorer, stats, executor)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, override_logging=False)
    stopping: dict[str, str] = {}

    @app.timer(0.5)
    async def watchdog() -> None:
        if on_progress is not None:
            on_progress(stats)
        reason = stop.reason(stats)
        if reason and not stopping:
            stopping["reason"] = reason
            log.info("worker stopping: %s", reason)
            asyncio.ensure_future(worker.stop())

    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    finally:
        executor.shutdown(wait=True)
    return stats
