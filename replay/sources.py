"""Historical documents for a replay, in event-time order, ids and fields preserved.

Every source yields `Document`s (raw: need a classifier) or `ScoredDocument`s (scored: their
stored scores can be copied), sorted by (published_at, id) and limited to [start, end). That
order is also the resumable position: a replay that stopped after (t, id) resumes after it.

- `kafka`: a topic read from the offsets `offsets_for_times` gives for `start`, up to `end` plus
  `kafka_lateness_s` of message time (documents reach Kafka after they are published);
- `clickhouse`: `scored_documents FINAL` of a source run, read in keyset pages;
- `file`: JSONL or Parquet archives of Document or ScoredDocument objects, read verbatim (unlike
  the `file` ingest source, nothing is de-duplicated, renamed or re-identified).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finsentry.errors import RecordError, ReplayError
from finsentry.records import (
    Document,
    ScoredDocument,
    SentimentProbs,
    TickerMention,
    decode_document,
    decode_scored,
)

if TYPE_CHECKING:
    from finsentry.config import KafkaSettings
    from finsentry.store import Store

log = logging.getLogger(__name__)
Item = Document | ScoredDocument
PAGE = 5000


def doc_of(item: Item) -> Document:
    return item.document if isinstance(item, ScoredDocument) else item


def position_of(item: Item) -> tuple[datetime, str]:
    """The event-time order key, also the resumable position."""
    d = doc_of(item)
    return d.published_at, d.id


@dataclass
class SourceStats:
    read: int = 0
    skipped: int = 0  # malformed or out of range
    problems: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < 20:
            self.problems.append(reason)
        log.warning("replay source: skipped %s", reason)


def decode_item(payload: bytes | str | dict[str, Any]) -> Item:
    """A stored message: ScoredDocument when it has a `document`, else Document."""
    if isinstance(payload, bytes | str):
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise RecordError(f"not JSON: {exc}") from None
    else:
        data = payload
    if not isinstance(data, dict):
        raise RecordError("not a JSON object")
    if "document" in data:
        return decode_scored(_coerce_json_fields(data, scored=True))
    return decode_document(_coerce_json_fields(data, scored=False))


def _coerce_json_fields(data: dict[str, Any], scored: bool) -> dict[str, Any]:
    """Archives (Parquet) may keep free-form maps as JSON text; nulls become absent fields."""
    data = {k: v for k, v in data.items() if v is not None}
    if scored:
        data["document"] = _coerce_json_fields(dict(data["document"]), scored=False)
        if isinstance(data.get("topic_probs"), str):
            data["topic_probs"] = json.loads(data["topic_probs"] or "{}")
    elif isinstance(data.get("metadata"), str):
        data["metadata"] = json.loads(data["metadata"] or "{}")
    return data


def _in_range(item: Item, start: datetime, end: datetime) -> bool:
    return start <= doc_of(item).published_at < end


def _sorted(items: list[Item]) -> list[Item]:
    items.sort(key=position_of)
    return items


# -- file archives ------------------------------------------------------------------------------
def read_archives(paths: Sequence[Path], start: datetime, end: datetime,
                  stats: SourceStats) -> list[Item]:
    """JSONL (.jsonl/.json/.ndjson) or Parquet archives, every row kept as written."""
    items: list[Item] = []
    for path in paths:
        if not path.is_file():
            raise ReplayError(f"archive not found: {path}")
        for where, row in _archive_rows(path):
            try:
                item = decode_item(row)
            except (RecordError, ValueError, TypeError, KeyError) as exc:
                stats.skip(f"{where}: {exc}")
                continue
            stats.read += 1
            if _in_range(item, start, end):
                items.append(item)
    return _sorted(items)


def _archive_rows(path: Path) -> Iterator[tuple[str, Any]]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:
            raise ReplayError(f"archive {path}: not readable as Parquet: {exc}") from exc
        for n, row in enumerate(rows, 1):
            yield f"{path}: row {n}", row
        return
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                yield f"{path}: line {n}", line


# -- ClickHouse ---------------------------------------------------------------------------------
_PAGE_SQL = """
SELECT * FROM scored_documents FINAL
WHERE run_id = %(run)s
  AND published_at >= toDateTime(%(start)s, 'UTC') AND published_at < toDateTime(%(end)s, 'UTC')
  AND (published_at > toDateTime(%(after_t)s, 'UTC')
       OR (published_at = toDateTime(%(after_t)s, 'UTC') AND doc_id > %(after_id)s))
ORDER BY published_at, doc_id
LIMIT %(limit)s
"""


def scored_from_row(row: dict[str, Any]) -> ScoredDocument:
    """Rebuild the ScoredDocument a scored_documents row was written from (scores kept)."""
    doc = Document(
        id=str(row["doc_id"]), source=str(row["source"]), url=row["url"] or None,
        title=str(row["title"]), text=str(row["text"]), language=row["language"] or None,
        published_at=_utc(row["published_at"]), fetched_at=_utc(row["fetched_at"]),
        tickers=[TickerMention(symbol=str(s), relevance=min(1.0, max(0.0, float(r))))
                 for s, r in zip(row["tickers"], row["ticker_relevance"], strict=True)],
        entities=[str(e) for e in row["entities"]], content_hash=row["content_hash"] or None,
        novelty=min(1.0, max(0.0, float(row["novelty"]))),
        duplicate_of=row["duplicate_of"] or None,
        metadata=json.loads(str(row["metadata"]) or "{}"),
    )
    return ScoredDocument(
        document=doc, sentiment=row["sentiment"],
        sentiment_probs=SentimentProbs(negative=_unit(row["p_negative"]),
                                       neutral=_unit(row["p_neutral"]),
                                       positive=_unit(row["p_positive"])),
        score=max(-1.0, min(1.0, float(row["score"]))), topic=str(row["topic"]),
        topic_probs=json.loads(str(row["topic_probs"]) or "{}"),
        model_name=str(row["model_name"]), model_version=str(row["model_version"]),
        processed_at=_utc(row["processed_at"]), run_id=str(row["run_id"]),
    )


def _unit(value: Any) -> float:
    return min(1.0, max(0.0, float(value)))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_clickhouse(store: Store, run_id: str, start: datetime, end: datetime,
                    stats: SourceStats, after: tuple[datetime, str] | None = None
                    ) -> Iterator[ScoredDocument]:
    """A stored run's documents in event-time order, in keyset pages (never all in memory)."""
    after_t, after_id = after or (start - timedelta(seconds=1), "")
    while True:
        rows = store.query(_PAGE_SQL, {"run": run_id, "start": start, "end": end,
                                       "after_t": after_t, "after_id": after_id, "limit": PAGE})
        for row in rows:
            try:
                item = scored_from_row(row)
            except (RecordError, ValueError, TypeError) as exc:
                stats.skip(f"run {run_id} document {row.get('doc_id')}: {exc}")
                continue
            stats.read += 1
            yield item
        if len(rows) < PAGE:
            return
        after_t, after_id = _utc(rows[-1]["published_at"]), str(rows[-1]["doc_id"])


# -- Kafka --------------------------------------------------------------------------------------
def start_offsets(settings: KafkaSettings, topic: str, start: datetime) -> dict[int, int | None]:
    """Per partition: the first offset whose message timestamp is >= start (None: none is)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             client_id="finsentry-replay", enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise ReplayError(f"kafka source: topic {topic!r} does not exist on "
                              f"{settings.bootstrap_servers}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        found = consumer.offsets_for_times({tp: int(start.timestamp() * 1000) for tp in tps})
        return {tp.partition: (found[tp].offset if found.get(tp) else None) for tp in tps}
    finally:
        consumer.close()


def read_kafka(settings: KafkaSettings, topic: str, start: datetime, end: datetime,
               lateness_s: float, stats: SourceStats) -> list[Item]:
    """Messages from the offsets for `start` up to message time end + lateness, by event time."""
    from kafka import KafkaConsumer, TopicPartition

    offsets = start_offsets(settings, topic, start)
    stop_ms = int((end.timestamp() + lateness_s) * 1000)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             client_id="finsentry-replay", enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    items: list[Item] = []
    try:
        tps = [TopicPartition(topic, p) for p, off in offsets.items() if off is not None]
        if not tps:
            return []
        ends = consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, offsets[tp.partition] or 0)
        open_parts = {tp for tp in tps if ends[tp] > (offsets[tp.partition] or 0)}
        while open_parts:
            batch = consumer.poll(timeout_ms=2000, max_records=2000)
            if not batch:
                raise ReplayError(f"kafka source: no progress reading {topic!r} "
                                  f"(partitions {sorted(tp.partition for tp in open_parts)})")
            for tp, records in batch.items():
                for rec in records:
                    if tp not in open_parts:
                        break
                    if rec.offset + 1 >= ends[tp] or rec.timestamp > stop_ms:
                        open_parts.discard(tp)
                        consumer.pause(tp)
                    if rec.timestamp > stop_ms:
                        break
                    _take(rec, topic, start, end, stats, items)
    finally:
        consumer.close()
    return _sorted(items)


def _take(rec: Any, topic: str, start: datetime, end: datetime, stats: SourceStats,
          items: list[Item]) -> None:
    try:
        item = decode_item(rec.value or b"")
    except RecordError as exc:
        stats.skip(f"{topic}[{rec.partition}]@{rec.offset}: {exc}")
        return
    stats.read += 1
    if _in_range(item, start, end):
        items.append(item)
