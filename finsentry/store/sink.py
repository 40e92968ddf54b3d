"""ScoredSink: store scored documents exactly once per (run_id, doc_id).

The sentiment_minute materialized view counts every inserted row, so idempotency lives here:
in-batch duplicates are dropped, ids already stored for the run are skipped (one SELECT), and
the remaining rows go in ONE insert. A transient failure retries the whole check-then-insert, so
an insert that landed before the connection died is found by the re-check, not written twice.
(Two sinks writing the same run concurrently could still race; one worker per partition doesn't.)

ClickHouse writes a materialized view's rows as a second part AFTER the source table's part, so
a worker killed between the two leaves documents stored but not counted in the rollup, and its
re-delivered batch is skipped as already stored. A re-delivery (the only way stored ids come
back) therefore also reconciles every rollup (finsentry.store.rollups) for those documents'
minutes: per key, what scored_documents FINAL holds minus what the rollup has summed, inserted
as a top-up row.
Truth and rollup are read in one statement; a third writer's insert caught between its two parts
in that instant could still be topped up twice (the same concurrent-writer caveat as above).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from finsentry.records import ScoredDocument
from finsentry.store import queries
from finsentry.store.base import Store
from finsentry.store.rollups import ROLLUPS

log = logging.getLogger(__name__)
TABLE = "scored_documents"
_MAX_IDS_PER_CHECK = 5000  # keeps the IN (...) list far below max_query_size


def scored_row(doc: ScoredDocument) -> dict[str, Any]:
    """The scored_documents row for a ScoredDocument (timestamps UTC, JSON for free-form maps)."""
    d = doc.document
    topic_conf = doc.topic_probs.get(doc.topic, 0.0) if doc.topic else 0.0
    return {
        "run_id": doc.run_id,
        "doc_id": d.id,
        "source": d.source,
        "url": d.url or "",
        "title": d.title,
        "text": d.text,
        "language": d.language or "",
        "published_at": d.published_at,
        "fetched_at": d.fetched_at,
        "processed_at": doc.processed_at,
        "tickers": [t.symbol for t in d.tickers],
        "ticker_relevance": [float(t.relevance) for t in d.tickers],
        "primary_ticker": d.primary_ticker,
        "entities": list(d.entities),
        "content_hash": d.content_hash or "",
        "novelty": float(d.novelty),
        "duplicate_of": d.duplicate_of or "",
        "sentiment": doc.sentiment,
        "p_negative": float(doc.sentiment_probs.negative),
        "p_neutral": float(doc.sentiment_probs.neutral),
        "p_positive": float(doc.sentiment_probs.positive),
        "score": float(doc.score),
        "topic": doc.topic,
        "topic_confidence": float(topic_conf),
        "topic_probs": json.dumps(doc.topic_probs, ensure_ascii=False, sort_keys=True),
        "model_name": doc.model_name,
        "model_version": doc.model_version,
        "schema_version": doc.schema_version,
        "metadata": json.dumps(d.metadata, ensure_ascii=False, sort_keys=True, default=str),
        "version": int(doc.processed_at.timestamp() * 1_000_000),
    }


class ScoredSink:
    """Writes ScoredDocument batches to scored_documents; safe to call again with the same docs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, docs: Sequence[ScoredDocument]) -> int:
        """Store the batch once; returns the number of rows actually inserted."""
        unique: dict[tuple[str, str], ScoredDocument] = {}
        for doc in docs:
            unique.setdefault((doc.run_id, doc.document.id), doc)
        if not unique:
            return 0
        runs = sorted({run for run, _ in unique})
        what = f"ScoredSink.write of {len(unique)} documents (run {', '.join(runs)})"
        return self.store.retrying(lambda: self._write_once(unique), what)

    def _write_once(self, unique: dict[tuple[str, str], ScoredDocument]) -> int:
        by_run: dict[str, list[str]] = {}
        for run_id, doc_id in unique:
            by_run.setdefault(run_id, []).append(doc_id)
        stored: set[tuple[str, str]] = set()
        minutes: dict[str, set[int]] = {}  # per run: the minutes of re-delivered documents
        for run_id, ids in by_run.items():
            for start in range(0, len(ids), _MAX_IDS_PER_CHECK):
                chunk = tuple(ids[start:start + _MAX_IDS_PER_CHECK])
                rows = self.store.query(
                    f"SELECT DISTINCT doc_id, toUInt32(toStartOfMinute(published_at)) AS minute "
                    f"FROM {TABLE} WHERE run_id = %(run_id)s AND doc_id IN %(ids)s",
                    {"run_id": run_id, "ids": chunk}, retry=False)
                for r in rows:
                    stored.add((run_id, str(r["doc_id"])))
                    minutes.setdefault(run_id, set()).add(int(r["minute"]))
        fresh = [scored_row(doc) for key, doc in unique.items() if key not in stored]
        self.store.insert(TABLE, fresh, retry=False)
        for run_id, run_minutes in minutes.items():
            self._top_up_rollup(run_id, sorted(run_minutes))
        return len(fresh)

    def _top_up_rollup(self, run_id: str, minutes: list[int]) -> None:
        """Count stored documents each rollup missed (a crash between the two parts)."""
        for rollup in ROLLUPS:
            rows = self.store.query(rollup.deficits(),
                                    {"run_id": run_id, "minutes": tuple(minutes)}, retry=False)
            if not rows:
                continue
            top_up = [{"run_id": run_id, **{d: r[d] for d in rollup.dim_names},
                       **{m: r[f"t_{m}"] - r[f"r_{m}"] for m in rollup.measure_names}}
                      for r in rows]
            self.store.insert(rollup.table, top_up, retry=False)
            log.warning("run %s: %s had missed %d document-ticker rows (a writer stopped "
                        "between storing documents and counting them); topped up %d keys",
                        run_id, rollup.table, sum(int(row["docs"]) for row in top_up),
                        len(top_up))

    # Read helpers (see finsentry.store.queries).
    def count_documents(self, run_id: str) -> int:
        return queries.count_documents(self.store, run_id)

    def sentiment_counts(self, run_id: str) -> dict[str, int]:
        return queries.sentiment_counts(self.store, run_id)

    def topic_counts(self, run_id: str) -> dict[str, int]:
        return queries.topic_counts(self.store, run_id)

    def sentiment_over_time(self, run_id: str, bucket_minutes: int = 5,
                            ticker: str | None = None) -> list[dict[str, Any]]:
        return queries.sentiment_over_time(self.store, run_id, bucket_minutes, ticker=ticker)
