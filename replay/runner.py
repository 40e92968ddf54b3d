"""Re-publish historical documents, in event-time order, into a run of its own.

A replay never touches live data: its rows carry its own run id (so the per-minute rollups,
keyed by run_id, separate automatically), and it publishes to `<replay.topic_prefix>.<run id>`
(one partition, so readers see event-time order), a topic no live worker consumes. With
`rescore` each batch is classified in one call by the chosen classifier (the worker's own
BatchScorer); without it the stored scores are copied. Writes go through ScoredSink, so a
resumed or repeated replay never counts a document twice.

Pacing: with `speed` X, a document published at event time t is released at
wall start + (t - t0) / X; without it, as fast as possible. The position (published_at, id of
the last stored document) is saved in the `runs` table after every batch: `--run ID` resumes
a replay that stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from finsentry.errors import ReplayError
from finsentry.records import Document, ScoredDocument
from finsentry.replay import sources
from finsentry.replay.sources import Item, SourceStats, doc_of, position_of
from finsentry.store import ScoredSink
from finsentry.store.runs import LIVE_RUN, RunRecord, get_run, save_run

if TYPE_CHECKING:
    from finsentry.config import ModelSettings, Settings
    from finsentry.models.base import Classifier
    from finsentry.store import Store

log = logging.getLogger(__name__)
SourceKind = Literal["kafka", "clickhouse", "file"]
PACING_TICK_S = 0.05  # documents due within this of each other share a batch


@dataclass(frozen=True)
class ReplayPlan:
    """What to replay; the fields that define the run are checked again on resume."""

    run_id: str
    source: SourceKind
    start: datetime
    end: datetime
    speed: float | None = None  # None: as fast as possible
    rescore: bool = False
    model: str | None = None  # registered classifier name or a model folder
    source_run: str = LIVE_RUN  # clickhouse: the run to read
    topic: str | None = None  # kafka: the topic to read (default: the scored topic)
    paths: tuple[Path, ...] = ()  # file: archives

    def identity(self) -> dict[str, Any]:
        return {"source": self.source, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "rescore": self.rescore, "model": self.model,
                "source_run": self.source_run, "topic": self.topic,
                "paths": [str(p) for p in self.paths]}

    @property
    def detail(self) -> str:
        if self.source == "clickhouse":
            return f"run {self.source_run}"
        if self.source == "kafka":
            return f"topic {self.topic}"
        return ", ".join(str(p) for p in self.paths)


@dataclass
class ReplayResult:
    run_id: str
    topic: str
    read: int = 0
    stored: int = 0
    published: int = 0
    rejected: int = 0
    skipped: int = 0
    resumed_after: tuple[datetime, str] | None = None
    seconds: float = 0.0
    model: str = ""
    # (wall seconds since start, event seconds since the first document) per batch
    pacing: list[tuple[float, float]] = field(default_factory=list)

    @property
    def docs_per_second(self) -> float:
        return self.stored / self.seconds if self.seconds > 0 else 0.0


def replay_topic(prefix: str, run_id: str) -> str:
    return f"{prefix}.{run_id}"


def load_rescorer(settings: ModelSettings, model: str | None) -> Classifier:
    """The classifier for --rescore: a registered name, or a sentiment model folder."""
    from finsentry.models import (
        load_classifier,
        registry,  # noqa: F401  (fills CLASSIFIERS)
    )
    from finsentry.models.base import CLASSIFIERS

    if model is None:
        return load_classifier(settings)
    if model in CLASSIFIERS:
        return load_classifier(settings.model_copy(update={"classifier": model}))
    path = Path(model).expanduser()
    if path.is_dir():
        return load_classifier(settings.model_copy(update={"sentiment_path": path}))
    raise ReplayError(f"--model {model!r}: neither a registered classifier "
                      f"({', '.join(sorted(CLASSIFIERS))}) nor a model folder")


class Publisher:
    """The run's own topic (one partition: event-time order for readers)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        from kafka import KafkaProducer

        from finsentry.kafka_admin import TopicSpec, ensure_topics

        ensure_topics(settings.kafka, [TopicSpec(topic, 1, settings.kafka.replication_factor)])
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers,
                                      acks="all", retries=5, linger_ms=5)

    def send(self, docs: list[ScoredDocument]) -> int:
        futures = [self.producer.send(self.topic, key=d.document.id.encode(), value=d.to_json())
                   for d in docs]
        self.producer.flush()
        for f in futures:
            f.get(timeout=30)
        return len(futures)

    def close(self) -> None:
        self.producer.close()


class Replayer:
    """Runs one ReplayPlan against a store (and a publisher unless replay.publish is off)."""

    def __init__(self, settings: Settings, store: Store, plan: ReplayPlan, *,
                 classifier: Classifier | None = None, publish: bool | None = None,
                 progress: bool = True, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if plan.run_id in {LIVE_RUN, settings.worker.run_id}:
            raise ReplayError(f"run {plan.run_id!r} is the live run: a replay needs its own")
        if plan.start >= plan.end:
            raise ReplayError(f"empty range: --from {plan.start} is not before --to {plan.end}")
        if plan.speed is not None and plan.speed <= 0:
            raise ReplayError(f"--speed must be positive, got {plan.speed}")
        self.settings = settings
        self.store = store
        self.plan = plan
        self.classifier = classifier
        self.publish = settings.replay.publish if publish is None else publish
        self.progress = progress
        self.clock = clock
        self.sleep = sleep
        self.topic = replay_topic(settings.replay.topic_prefix, plan.run_id)
        self.stats = SourceStats()

    # -- run bookkeeping -------------------------------------------------------------------------
    def _record(self) -> RunRecord:
        record = get_run(self.store, self.plan.run_id)
        identity = self.plan.identity()
        if record is None:
            return RunRecord(run_id=self.plan.run_id, source=self.plan.source,
                             source_detail=self.plan.detail, range_from=self.plan.start,
                             range_to=self.plan.end, model=self.plan.model or "",
                             rescore=self.plan.rescore, speed=self.plan.speed or 0.0,
                             topic=self.topic if self.publish else "", params=identity)
        if record.status == "done":
            raise ReplayError(f"run {self.plan.run_id} is already complete: drop it "
                              f"(finsentry runs drop {self.plan.run_id}) or pick another --run")
        if record.params != identity:
            raise ReplayError(f"run {self.plan.run_id} was started with {record.params}; "
                              f"resuming needs the same source, range and model")
        return record

    # -- items -----------------------------------------------------------------------------------
    def _items(self, after: tuple[datetime, str] | None) -> tuple[Iterator[Item], int | None]:
        plan, stats = self.plan, self.stats
        if plan.source == "clickhouse":
            total = int(self.store.query(
                "SELECT count() AS n FROM scored_documents FINAL WHERE run_id = %(run)s AND "
                "published_at >= toDateTime(%(start)s, 'UTC') AND "
                "published_at < toDateTime(%(end)s, 'UTC')",
                {"run": plan.source_run, "start": plan.start, "end": plan.end})[0]["n"])
            return sources.read_clickhouse(self.store, plan.source_run, plan.start, plan.end,
                                           stats, after), total
        if plan.source == "kafka":
            topic = plan.topic or self.settings.kafka.scored_topic
            items = sources.read_kafka(self.settings.kafka, topic, plan.start, plan.end,
                                       self.settings.replay.kafka_lateness_s, stats)
        elif plan.source == "file":
            items = sources.read_archives(plan.paths, plan.start, plan.end, stats)
        else:
            raise ReplayError(f"unknown replay source {plan.source!r}")
        if after is not None:
            items = [i for i in items if position_of(i) > after]
        return iter(items), len(items)

    def _batches(self, items: Iterable[Item]) -> Iterator[list[Item]]:
        """Batches of at most batch_size; paced: only documents due together, released on time."""
        size = self.settings.replay.batch_size
        speed = self.plan.speed
        batch: list[Item] = []
        t0: float | None = None
        w0 = self.clock()
        for item in items:
            t = doc_of(item).published_at.timestamp()
            t0 = t if t0 is None else t0
            if batch and (len(batch) >= size or (
                    speed is not None and
                    (t - doc_of(batch[0]).published_at.timestamp()) / speed > PACING_TICK_S)):
                yield batch
                batch = []
            if not batch and speed is not None:
                wait = w0 + (t - t0) / speed - self.clock()
                if wait > 0:
                    self.sleep(wait)
            batch.append(item)
        if batch:
            yield batch

    # -- the replay ------------------------------------------------------------------------------
    def run(self) -> ReplayResult:
        from tqdm import tqdm

        from finsentry.streams.processor import BatchScorer

        record = self._record()
        after = (record.position_time, record.position_id) if record.position_id else None
        record.status = "running"
        save_run(self.store, record)
        result = ReplayResult(self.plan.run_id, self.topic if self.publish else "",
                              resumed_after=after)
        sink = ScoredSink(self.store)
        scorer = None
        if self.plan.rescore:
            if self.classifier is None:
                self.classifier = load_rescorer(self.settings.models, self.plan.model)
            scorer = BatchScorer(self.classifier, sink, self.plan.run_id, self.plan.source,
                                 self.settings.clickhouse.retry_max_wait_s)
            result.model = f"{self.classifier.name} {self.classifier.version}"
            record.model = self.plan.model or self.classifier.name
        publisher = Publisher(self.settings, self.topic) if self.publish else None
        items, total = self._items(after)
        bar = tqdm(total=total, desc=f"replay {self.plan.run_id}", unit="doc",
                   disable=not self.progress)
        started = self.clock()
        first_t: float | None = None
        try:
            for batch in self._batches(items):
                first_t = first_t or doc_of(batch[0]).published_at.timestamp()
                result.pacing.append((self.clock() - started,
                                      doc_of(batch[0]).published_at.timestamp() - first_t))
                scored = self._score(batch, scorer, sink, result)
                if publisher is not None:
                    result.published += publisher.send(scored)
                result.read += len(batch)
                record.position_time, record.position_id = position_of(batch[-1])
                record.docs += len(batch)
                save_run(self.store, record)
                bar.update(len(batch))
            record.status = "done"
        except BaseException:
            record.status = "interrupted"
            raise
        finally:
            save_run(self.store, record)
            bar.close()
            if publisher is not None:
                publisher.close()
        result.skipped = self.stats.skipped
        result.seconds = self.clock() - started
        return result

    def _score(self, batch: list[Item], scorer: Any, sink: ScoredSink,
               result: ReplayResult) -> list[ScoredDocument]:
        run_id = self.plan.run_id
        if scorer is not None:
            outcome = scorer.score_and_store([doc_of(i) for i in batch])
            result.stored += outcome.written
            result.rejected += len(outcome.rejected)
            for r in outcome.rejected:
                log.warning("replay %s: document rejected: %s", run_id, r.reason)
            return list(outcome.scored)
        copies = []
        for item in batch:
            if isinstance(item, Document):
                raise ReplayError(f"document {item.id} from the {self.plan.source} source has no "
                                  "scores to copy: replay it with --rescore")
            copies.append(item.model_copy(update={"run_id": run_id}))
        result.stored += sink.write(copies)
        return copies


def delete_replay_topic(settings: Settings, run_id: str) -> str | None:
    """Delete the run's topic if it exists; its name, or None when there was none."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    topic = replay_topic(settings.replay.topic_prefix, run_id)
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers,
                                 client_id="finsentry-runs",
                                 request_timeout_ms=int(settings.kafka.request_timeout_s * 1000))
    except KafkaError as exc:
        raise ReplayError(f"run {run_id}: cannot reach Kafka at "
                          f"{settings.kafka.bootstrap_servers} to delete topic {topic}: {exc}"
                          ) from exc
    try:
        if topic not in set(admin.list_topics()):
            return None
        admin.delete_topics([topic])
        return topic
    finally:
        admin.close()
