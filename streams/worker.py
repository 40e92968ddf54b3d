"""The faust-streaming worker: raw topic -> batched classify + store -> scored topic.

At-least-once, with offsets committed only for what is stored: the agent takes batches with
`noack_take` (Faust's `take_events` acks a batch in a `finally`, i.e. also when its insert never
landed) and acks each event only after the batch's insert AND every send were confirmed. An
abandoned batch (shutdown, fatal error) stays unacked, so Faust never commits past it and a
restart re-delivers it; the idempotent sink keeps queries duplicate-free. Batches are pipelined
(`worker.pipeline_depth`, default 2): batch N+1 is decoded and classified on one thread while
batch N is inserted on another and sent. Classified batches that follow each other share one
insert (`streams.grouping`: up to `worker.insert_max_rows`, waiting at most
`worker.insert_linger_s`, and only while a backlog waits for the classifier); sending and acking
stay in batch order, and a batch is never acked before its predecessor succeeded. Stopping is
`streams.lifecycle`; storage faults are `streams.storing`; sends are `streams.publish`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from finsentry.config import Settings
from finsentry.errors import StoreInterrupted
from finsentry.models.base import Classifier
from finsentry.sanitize import inert
from finsentry.store.metrics import flush_metrics, record_batch
from finsentry.streams.grouping import InsertGroups
from finsentry.streams.lifecycle import DaemonExecutor, Lifecycle
from finsentry.streams.processor import (
    BatchScorer,
    ProcessorStats,
    RawMessage,
    SinkProtocol,
)
from finsentry.streams.publish import Abandoned, Publisher
from finsentry.streams.rebalance import coordinator_failure, patch_aiokafka

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


BatchHook = Callable[[ProcessorStats, float], None]


def build_app(settings: Settings, scorer: BatchScorer, stats: ProcessorStats,
              executor: DaemonExecutor, life: Lifecycle,
              on_batch: BatchHook | None = None,
              classify_executor: DaemonExecutor | None = None) -> tuple[Any, Publisher]:
    """Create the Faust app with one batching agent; topics must already exist."""
    import faust

    from finsentry.streams.fetch_backoff import install as install_fetch_backoff

    k, w = settings.kafka, settings.worker
    install_fetch_backoff(w.empty_fetch_backoff_s)
    datadir = w.data_dir.expanduser()
    datadir.mkdir(parents=True, exist_ok=True)  # Faust makes only its own sub-folder
    classify_executor = classify_executor or executor
    app = faust.App(
        w.app_id,
        broker=faust_broker_urls(k.bootstrap_servers),
        store="memory://",
        datadir=str(datadir / "{conf.name}"),
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
        producer_linger=0.005,  # a batch's sends go out as a few requests, not one per document
        producer_max_request_size=k.max_message_bytes,
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
    publisher = Publisher(
        lambda key, value: scored_topic.send(key=key, value=value),
        lambda key, value: dlq.send(key=key, value=value),
        k.raw_topic, k.max_message_bytes, life.abort, settings.clickhouse.retry_max_wait_s)

    classifying = [0]  # batches taken but not yet handed to the insert groups
    groups = InsertGroups(scorer.store_many, executor, w.insert_max_rows, w.insert_linger_s,
                          coming=lambda: classifying[0], hurry=lambda: life.stopping)

    async def process(stream: Any, events: list[Any], previous: asyncio.Task[None] | None,
                      handed: asyncio.Event, previous_handed: asyncio.Event | None) -> None:
        """One batch: classify (thread 1); join an insert group in batch order (thread 2);
        then, after the previous batch was sent and acked, send, and only then ack. Chained on
        `previous`, so batches are published and acked in order, and a batch whose
        predecessor failed is never acked."""
        loop = asyncio.get_running_loop()
        try:
            try:
                messages = [RawMessage(e.message.value, e.message.topic, e.message.partition,
                                       e.message.offset) for e in events]
                first = await loop.run_in_executor(classify_executor,
                                                   scorer.decode_and_classify, messages)
                stats.model_seconds += first.classify_s
                stats.predict_seconds += first.model_s
                if previous_handed is not None:
                    await previous_handed.wait()  # groups are filled in batch order
            finally:
                classifying[0] -= 1
                handed.set()
                groups.nudge()
            classified = time.monotonic()
            result = await groups.store(first)
            elapsed = first.classify_s + (time.monotonic() - classified)
            if previous is not None:
                await previous  # re-raises the predecessor's failure: then no ack here
            await publisher.publish(result)  # confirmed before the events are acked
            if result.rejected:
                log.warning("dead-lettered %d of %d messages from %s (first: %s)",
                            len(result.rejected), len(events), k.raw_topic,
                            inert(result.rejected[0].reason, 300))
            stats.add(len(events), result, elapsed)
            stats.published += len(result.scored)
            record_batch(scorer.sink, w.run_id, events, result, elapsed, app)  # never raises
            if on_batch is not None:
                on_batch(stats, elapsed)
            for event in events:
                await stream.ack(event)
        finally:
            life.in_flight -= 1

    async def settle(task: asyncio.Task[None], size: int) -> bool:
        """Wait for a batch; False when it failed (the agent then stops taking batches)."""
        try:
            await task
            return True
        except (StoreInterrupted, Abandoned) as exc:
            life.abandoned += 1
            log.warning("batch of %d abandoned uncommitted: %s", size, inert(exc, 300))
        except Exception as exc:  # a bug or an unclassified failure: exit non-zero
            log.exception("batch from %s failed", k.raw_topic)
            life.fail(f"batch from {k.raw_topic} failed: {inert(exc, 300)}")
        return False

    # batches in flight: pipeline_depth beyond what one insert group holds, so the classifier
    # keeps going while a group lingers or is inserted (1 and no linger = one at a time)
    group_batches = -(-w.insert_max_rows // w.batch_size) if w.insert_linger_s > 0 else 1
    max_in_flight = w.pipeline_depth + group_batches - 1

    @app.agent(raw, name="score")
    async def score(stream: Any) -> None:
        pending: deque[tuple[asyncio.Task[None], int]] = deque()
        last_handed: asyncio.Event | None = None
        failed = False
        async for events in stream.noack_take(w.batch_size, within=w.batch_max_wait_s):
            if life.stopping:  # taken but not started: leave it unacked for the next owner
                life.abandoned += 1
                break
            stats.begin()
            life.in_flight += 1
            classifying[0] += 1
            previous = pending[-1][0] if pending else None
            handed = asyncio.Event()
            pending.append((asyncio.ensure_future(
                process(stream, events, previous, handed, last_handed)), len(events)))
            last_handed = handed
            while pending and (len(pending) >= max_in_flight or pending[0][0].done()):
                if not await settle(*pending.popleft()):
                    failed = True
                    break
            if failed:
                break
        groups.nudge()
        while pending:  # drain: in-flight batches finish (or are abandoned) before we return
            await settle(*pending.popleft())

    return app, publisher


def _worker_class() -> type:
    import faust

    class GracefulWorker(faust.Worker):
        """A Faust worker whose SIGTERM/SIGINT go through the Lifecycle (drain, then stop)."""

        life: Lifecycle

        def _on_sigterm(self) -> None:
            self._signal("SIGTERM")

        def _on_sigint(self) -> None:
            self._signal("SIGINT")

        def _signal(self, name: str) -> None:
            self.life.request_stop(f"second {name}" if self.life.stopping else name)

    return GracefulWorker


def run_worker(settings: Settings, classifier: Classifier, sink: SinkProtocol,
               stop: StopPolicy | None = None, loglevel: str = "WARNING",
               on_progress: Any = None, on_batch: BatchHook | None = None,
               on_app: Callable[[Any], None] | None = None) -> ProcessorStats:
    """Run one Faust worker in this process until signalled or `stop` says so.

    `stats.fatal` is set when the worker must exit non-zero (the caller decides how)."""
    patch_aiokafka()
    stop = stop or StopPolicy()
    stats = ProcessorStats()
    store = getattr(sink, "store", None)  # its retry loops share the abort flag
    abort = store.interrupt if store is not None else threading.Event()
    abort.clear()
    life = Lifecycle(settings.worker.shutdown_grace_s, abort)
    scorer = BatchScorer(classifier, sink, settings.worker.run_id, settings.kafka.raw_topic,
                         settings.clickhouse.retry_max_wait_s, abort=abort)
    executor = DaemonExecutor("finsentry-store")
    classify_executor = DaemonExecutor("finsentry-classify")
    app, publisher = build_app(settings, scorer, stats, executor, life, on_batch,
                               classify_executor)
    if on_app is not None:
        on_app(app)
    worker = _worker_class()(app, loglevel=loglevel, quiet=True, override_logging=False)
    worker.life = life
    stopping: dict[str, bool] = {}

    outages = [o for o in (getattr(store, "outage", None), publisher.outage) if o]

    @app.timer(0.5)
    async def watchdog() -> None:
        stats.retries = sum(o.total_failures for o in outages)
        if on_progress is not None:
            on_progress(stats)
        reason = stop.reason(stats)
        if reason:
            life.request_stop(reason)
        dead = coordinator_failure(app)
        if dead and not life.stopping:
            life.fail(dead)
        if life.stopping and not stopping and life.ready_to_stop():
            stopping["done"] = True
            asyncio.ensure_future(worker.stop())

    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None) and life.fatal is None:
            life.fail(f"Faust worker exited with status {exc.code}")
    finally:
        abort.set()  # any retry still running ends at its next wait
        classify_executor.shutdown(wait=True, timeout=settings.clickhouse.connect_timeout_s + 5)
        executor.shutdown(wait=True, timeout=settings.clickhouse.connect_timeout_s + 5)
        if not executor.busy:
            abort.clear()  # the store stays usable for the caller
        if store is not None:
            flush_metrics(store)  # the batch rows gathered in the last second
    stats.stop_reason, stats.fatal = life.stop_reason, life.fatal
    return stats
