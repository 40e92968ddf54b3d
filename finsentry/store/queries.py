"""Read helpers the demo, dashboards and tests use; SQL valid on ClickHouse 18.16 and chdb.

Document-level reads use `FINAL` so a re-delivered document never counts twice; per-ticker
time series read the `sentiment_minute` aggregate (one row per ticker, so a document naming
two tickers appears under both).
"""

from __future__ import annotations

from typing import Any

from finsentry.errors import StoreError
from finsentry.store.base import Store


def count_documents(store: Store, run_id: str) -> int:
    rows = store.query("SELECT count() AS n FROM scored_documents FINAL WHERE run_id = %(run_id)s",
                       {"run_id": run_id})
    return int(rows[0]["n"]) if rows else 0


def _counts_by(store: Store, run_id: str, column: str) -> dict[str, int]:
    rows = store.query(
        f"SELECT {column} AS key, count() AS n FROM scored_documents FINAL "
        f"WHERE run_id = %(run_id)s GROUP BY {column} ORDER BY {column}", {"run_id": run_id})
    return {str(r["key"]): int(r["n"]) for r in rows}


def sentiment_counts(store: Store, run_id: str) -> dict[str, int]:
    """Documents per sentiment label for a run."""
    return _counts_by(store, run_id, "sentiment")


def topic_counts(store: Store, run_id: str) -> dict[str, int]:
    """Documents per topic for a run ('' = no topic)."""
    return _counts_by(store, run_id, "topic")


def sentiment_over_time(store: Store, run_id: str, bucket_minutes: int = 5, *,
                        ticker: str | None = None) -> list[dict[str, Any]]:
    """Rows of (bucket, sentiment, docs, mean_score) by published_at, oldest first.

    Without `ticker`: exact document counts from scored_documents FINAL. With `ticker`: from the
    sentiment_minute aggregate for that ticker ('' = documents naming none).
    """
    if not 1 <= bucket_minutes <= 7 * 24 * 60:
        raise StoreError(f"bucket_minutes must be 1..10080, got {bucket_minutes}")
    params: dict[str, Any] = {"run_id": run_id, "seconds": bucket_minutes * 60}
    if ticker is None:
        sql = """
            SELECT toDateTime(intDiv(toUInt32(published_at), %(seconds)s) * %(seconds)s, 'UTC')
                       AS bucket,
                   sentiment, count() AS n_docs, avg(score) AS mean_score
            FROM scored_documents FINAL
            WHERE run_id = %(run_id)s
            GROUP BY bucket, sentiment
            ORDER BY bucket, sentiment"""
    else:
        params["ticker"] = ticker
        sql = """
            SELECT toDateTime(intDiv(toUInt32(minute), %(seconds)s) * %(seconds)s, 'UTC')
                       AS bucket,
                   sentiment, sum(docs) AS n_docs, sum(score_sum) / sum(docs) AS mean_score
            FROM sentiment_minute
            WHERE run_id = %(run_id)s AND ticker = %(ticker)s
            GROUP BY bucket, sentiment
            ORDER BY bucket, sentiment"""
    rows = store.query(sql, params)
    return [{"bucket": r["bucket"], "sentiment": r["sentiment"], "docs": int(r["n_docs"]),
             "mean_score": float(r["mean_score"])} for r in rows]
