"""Batch processing, independent of Faust: decode -> classify (one call) -> store (one insert).

Split in an ok/err fashion: every input message ends either as a ScoredDocument (stored and
published) or as a dead-letter envelope with its reason; nothing is dropped. The blocking half
(`score_and_store`) runs in the worker's executor thread so the event loop keeps heartbeating;
storing itself (outage retries, isolating refused documents) is `streams.storing.BatchWriter`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from finsentry.errors import RecordError
from finsentry.models.base import Classifier, Prediction
from finsentry.records import (
    Document,
    ScoredDocument,
    SentimentProbs,
    dead_letter,
    decode_document,
    utcnow,
)
from finsentry.sanitize import inert
from finsentry.streams.storing import BatchWriter, SinkProtocol

__all__ = ["BatchResult", "BatchScorer", "ProcessorStats", "RawMessage", "Rejected",
           "SinkProtocol", "decode_batch", "to_scored"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawMessage:
    """What the processor needs of a Kafka message."""

    value: bytes | None
    topic: str
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Rejected:
    """A message that could not be processed, as a dead-letter envelope."""

    key: bytes | None
    envelope: bytes
    reason: str


@dataclass
class BatchResult:
    scored: list[ScoredDocument] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    written: int = 0
    classify_s: float = 0.0  # time on the classify thread (decode + the model call)
    model_s: float = 0.0  # of which inside the classifier's predict_batch
    inserts: int | None = None  # 1 on the batch leading an insert, 0 on those sharing it
    insert_rows: int | None = None  # rows that insert wrote (the group's, on the leading batch)


@dataclass
class ProcessorStats:
    """Counters for progress output and stop conditions; updated on the event loop only."""

    messages: int = 0
    scored: int = 0
    published: int = 0
    retries: int = 0  # failed store/broker attempts that were retried
    written: int = 0
    rejected: int = 0
    batches: int = 0
    classify_seconds: float = 0.0
    model_seconds: float = 0.0  # classify-thread time: busy share = model_seconds / wall time
    predict_seconds: float = 0.0  # of which inside predict_batch (the rest: decode, records)
    started_at: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    first_batch_at: float | None = None  # when the first batch arrived (throughput excludes join)
    last_batch_s: float = 0.0
    stop_reason: str | None = None
    fatal: str | None = None  # set when the worker must exit non-zero

    @property
    def busy_seconds(self) -> float:
        return self.last_activity - (self.first_batch_at or self.last_activity)

    def begin(self) -> None:
        if self.first_batch_at is None:
            self.first_batch_at = time.monotonic()

    def add(self, n_messages: int, result: BatchResult, classify_s: float) -> None:
        self.messages += n_messages
        self.scored += len(result.scored)
        self.written += result.written
        self.rejected += len(result.rejected)
        self.batches += 1
        self.classify_seconds += classify_s
        self.last_batch_s = classify_s
        self.last_activity = time.monotonic()


def _reject(msg: RawMessage, reason: str, stage: str) -> Rejected:
    payload = msg.value if msg.value is not None else b""
    env = dead_letter(payload, reason, topic=msg.topic, partition=msg.partition,
                      offset=msg.offset, stage=stage)
    return Rejected(key=None, envelope=env, reason=reason)


def decode_batch(messages: Sequence[RawMessage]) -> tuple[list[Document], list[Rejected]]:
    """Validate every message against the Document contract; the rest become dead letters."""
    docs: list[Document] = []
    rejected: list[Rejected] = []
    for msg in messages:
        if not msg.value:
            rejected.append(_reject(msg, "empty message", "validate"))
            continue
        try:
            docs.append(decode_document(msg.value))
        except RecordError as exc:
            rejected.append(_reject(msg, str(exc), "validate"))
    return docs, rejected


def to_scored(doc: Document, pred: Prediction, run_id: str) -> ScoredDocument:
    return ScoredDocument(
        document=doc,
        sentiment=pred.sentiment,
        sentiment_probs=SentimentProbs(**pred.sentiment_probs),
        score=max(-1.0, min(1.0, pred.score)),
        topic=pred.topic,
        topic_probs=pred.topic_probs,
        model_name=pred.model_name,
        model_version=pred.model_version,
        processed_at=utcnow(),
        run_id=run_id,
    )


class BatchScorer:
    """Classify a batch in ONE model call and write it in ONE insert (retried, never dropped)."""

    def __init__(self, classifier: Classifier, sink: SinkProtocol, run_id: str,
                 topic: str, retry_max_wait_s: float = 10.0,
                 abort: threading.Event | None = None) -> None:
        self.classifier = classifier
        self.sink = sink
        self.run_id = run_id
        self.topic = topic
        self.writer = BatchWriter(sink, abort or threading.Event(), retry_max_wait_s)
        self._lock = threading.Lock()  # one batch at a time per scorer
        self._model_s = 0.0  # time inside predict_batch since decode_and_classify began

    def _predict(self, texts: list[str]) -> list[Prediction]:
        """The model call, timed: the benchmark compares it with the bare loop's."""
        started = time.perf_counter()
        try:
            return self.classifier.predict_batch(texts)
        finally:
            self._model_s += time.perf_counter() - started

    def classify(self, docs: Sequence[Document]) -> tuple[list[ScoredDocument], list[Rejected]]:
        texts = [d.classify_text for d in docs]
        try:
            preds = self._predict(texts)
            if len(preds) != len(docs):
                raise ValueError(f"classifier returned {len(preds)} results for {len(docs)}")
            return [to_scored(d, p, self.run_id) for d, p in zip(docs, preds, strict=True)], []
        except Exception as exc:  # isolate the culprit: fall back to one-by-one
            log.warning("batch classification failed on %s (%s); retrying one by one",
                        self.topic, inert(exc, 300))
        scored: list[ScoredDocument] = []
        rejected: list[Rejected] = []
        for doc in docs:
            try:
                (pred,) = self._predict([doc.classify_text])
                scored.append(to_scored(doc, pred, self.run_id))
            except Exception as exc:
                msg = RawMessage(doc.to_json(), self.topic)
                rejected.append(_reject(msg, f"classifier {self.classifier.name}: {exc}",
                                        "classify"))
        return scored, rejected

    def score_and_store(self, docs: Sequence[Document]) -> BatchResult:
        with self._lock:
            scored, rejected = self.classify(docs)
            return self.store(scored, rejected)

    def decode_and_classify(self, messages: Sequence[RawMessage]) -> BatchResult:
        """The first half of a pipelined batch (decode + ONE model call), nothing stored yet."""
        started = time.perf_counter()
        self._model_s = 0.0
        docs, rejected = decode_batch(messages)
        scored, refused = self.classify(docs)
        return BatchResult(scored=scored, rejected=rejected + refused,
                           classify_s=time.perf_counter() - started, model_s=self._model_s)

    def store(self, scored: list[ScoredDocument], rejected: list[Rejected]) -> BatchResult:
        """The second half for one batch: ONE insert (retried); refused documents rejected."""
        return self.store_many([BatchResult(scored=scored, rejected=rejected)])[0]

    def store_many(self, batches: Sequence[BatchResult]) -> list[BatchResult]:
        """Classified batches written in ONE insert (retried); one result per batch, in order.

        Documents the store refuses are rejected from the batch they came in; the rows the
        insert wrote are counted on the batches in order (a document already stored, or sent
        twice, is written once)."""
        scored = [doc for batch in batches for doc in batch.scored]
        written, refused = self.writer.write(scored)
        reasons = {doc.document.id: reason for doc, reason in refused}
        results: list[BatchResult] = []
        left = written
        for batch in batches:
            keep: list[ScoredDocument] = []
            rejected = list(batch.rejected)
            for doc in batch.scored:
                reason = reasons.get(doc.document.id)
                if reason is None:
                    keep.append(doc)
                else:
                    msg = RawMessage(doc.document.to_json(), self.topic)
                    rejected.append(_reject(msg, f"store refused it: {reason}", "store"))
            mine = min(len(keep), left)
            left -= mine
            results.append(BatchResult(scored=keep, rejected=rejected, written=mine,
                                       classify_s=batch.classify_s, inserts=0, insert_rows=0))
        if results and written:
            results[0].inserts, results[0].insert_rows = 1, written
        return results
