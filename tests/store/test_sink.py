"""ScoredSink stores each (run_id, doc_id) once, so the per-minute aggregate counts it once."""

from __future__ import annotations

import json

from finsentry.store import ScoredSink, Store, scored_row
from tests.store.factories import HOSTILE_TEXTS, T0, scored


def _minute_totals(store: Store, run_id: str) -> dict[str, int]:
    rows = store.query("SELECT ticker, sum(docs) AS n FROM sentiment_minute "
                       "WHERE run_id = %(r)s GROUP BY ticker ORDER BY ticker", {"r": run_id})
    return {r["ticker"]: int(r["n"]) for r in rows}


def test_write_twice_stores_once(store: Store) -> None:
    sink = ScoredSink(store)
    docs = [scored(i, tickers=("AAPL", "MSFT") if i % 2 else ()) for i in range(10)]
    assert sink.write(docs + docs[:3]) == 10  # in-batch duplicates dropped
    assert sink.write(docs) == 0  # re-delivery: all already stored
    assert sink.write(docs[5:] + [scored(10)]) == 1  # partly new
    assert sink.count_documents("run-1") == 11
    assert store.query("SELECT count() AS n FROM scored_documents")[0]["n"] == 11
    # 5 docs name AAPL+MSFT, 5 none (the "" bucket), doc 10 AAPL: once per ticker
    assert _minute_totals(store, "run-1") == {"": 5, "AAPL": 6, "MSFT": 5}
    assert sink.write([]) == 0


def test_runs_are_independent(store: Store) -> None:
    sink = ScoredSink(store)
    assert sink.write([scored(1, run_id="a"), scored(1, run_id="b")]) == 2
    assert sink.write([scored(1, run_id="b")]) == 0
    assert sink.count_documents("a") == 1 and sink.count_documents("b") == 1
    assert sink.count_documents("nope") == 0


def test_row_roundtrip_with_hostile_text(store: Store) -> None:
    sink = ScoredSink(store)
    docs = [scored(i, text=t) for i, t in enumerate(HOSTILE_TEXTS)]
    assert sink.write(docs) == len(docs)
    for doc in docs:
        got = store.query("SELECT * FROM scored_documents FINAL "
                          "WHERE run_id = %(r)s AND doc_id = %(d)s",
                          {"r": doc.run_id, "d": doc.document.id})
        assert len(got) == 1
        row, want = got[0], scored_row(doc)
        assert row["text"] == doc.document.text
        for key in ("title", "url", "source", "sentiment", "topic", "tickers", "primary_ticker",
                    "model_name", "model_version", "content_hash", "version", "language"):
            assert row[key] == want[key], key
        assert row["published_at"] == doc.document.published_at
        assert row["processed_at"] == doc.processed_at.replace(microsecond=0)
        assert json.loads(row["metadata"]) == doc.document.metadata
        assert json.loads(row["topic_probs"]) == doc.topic_probs
        assert abs(row["score"] - doc.score) < 1e-6


def test_read_helpers(store: Store) -> None:
    sink = ScoredSink(store)
    docs = [scored(i, topic="earnings" if i < 4 else "", minute=i * 3) for i in range(6)]
    sink.write(docs)
    assert sink.sentiment_counts("run-1") == {"negative": 2, "neutral": 2, "positive": 2}
    assert sink.topic_counts("run-1") == {"": 2, "earnings": 4}

    series = sink.sentiment_over_time("run-1", bucket_minutes=5)
    assert sum(r["docs"] for r in series) == 6
    buckets = sorted({r["bucket"] for r in series})
    assert buckets[0] == T0 and all(b.minute % 5 == 0 for b in buckets)
    # minutes 0,3 -> 12:00; 6,9 -> 12:05; 12 -> 12:10; 15 -> 12:15
    per_bucket = {b: sum(r["docs"] for r in series if r["bucket"] == b) for b in buckets}
    assert list(per_bucket.values()) == [2, 2, 1, 1]
    by_ticker = sink.sentiment_over_time("run-1", bucket_minutes=60, ticker="AAPL")
    assert sum(r["docs"] for r in by_ticker) == 6
    for r in by_ticker:
        assert -1.0 <= r["mean_score"] <= 1.0


def test_one_store_shared_by_threads_writes_each_doc_once(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sink = ScoredSink(store)
    batches = [[scored(j) for j in range(i * 10, i * 10 + 15)] for i in range(6)]  # overlapping
    with ThreadPoolExecutor(3) as pool:
        written = list(pool.map(sink.write, batches))
    assert sum(written) == 65 == sink.count_documents("run-1")
    assert store.query("SELECT count() AS n FROM scored_documents")[0]["n"] == 65
    assert store.query("SELECT sum(docs) AS n FROM sentiment_minute")[0]["n"] == 65


def test_redelivery_tops_up_what_a_crash_left_uncounted(store: Store) -> None:
    sink = ScoredSink(store)
    docs = [scored(i, tickers=("AAPL", "MSFT") if i % 2 else ()) for i in range(6)]
    assert sink.write(docs[:2]) == 2
    # The crash: ClickHouse writes the view's rollup rows as a second part after the table's
    # part, and a worker killed in between leaves documents stored but never counted. The test
    # reproduces that state for real by inserting while the view is detached.
    store.execute("DETACH TABLE sentiment_minute_mv")
    try:
        store.insert("scored_documents", [scored_row(d) for d in docs[2:5]])
    finally:
        store.execute("ATTACH TABLE sentiment_minute_mv")
    assert _minute_totals(store, "run-1") == {"": 1, "AAPL": 1, "MSFT": 1}

    # the re-delivered batch: 3 stored documents are skipped, their rollup rows topped up
    assert sink.write(docs[2:]) == 1
    assert sink.count_documents("run-1") == 6
    assert _minute_totals(store, "run-1") == {"": 3, "AAPL": 3, "MSFT": 3}
    scores = store.query("SELECT sum(score_sum) AS s FROM sentiment_minute WHERE ticker = 'AAPL'")
    want = sum(d.score for d in docs if d.document.tickers)
    assert abs(scores[0]["s"] - want) < 1e-5

    # a second re-delivery (and one with nothing missing) changes nothing
    assert sink.write(docs) == 0
    assert _minute_totals(store, "run-1") == {"": 3, "AAPL": 3, "MSFT": 3}
