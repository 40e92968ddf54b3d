"""sentiment_rollup: per-minute keys with language, relevance and novelty tenths, docs counted
once market-wide, topped up after a crash like every rollup, backfilled once on migration."""

from __future__ import annotations

from finsentry.store import ScoredSink, Store, scored_row
from finsentry.store.migrations import MIGRATIONS
from finsentry.store.rollups import ROLLUPS, SENTIMENT_ROLLUP
from tests.store.factories import scored


def _by_ticker(store: Store) -> dict[tuple[str, int], int]:
    rows = store.query("SELECT ticker, relevance_tenths AS relevance, sum(docs) AS n "
                       "FROM sentiment_rollup WHERE run_id = 'run-1' "
                       "GROUP BY ticker, relevance_tenths")
    return {(r["ticker"], int(r["relevance"])): int(r["n"]) for r in rows}


def _totals(store: Store) -> tuple[int, int, float, float]:
    row = store.query("SELECT sum(docs) AS d, sum(docs_once) AS o, sum(score_sum) AS s, "
                      "sum(p_negative_sum) AS p FROM sentiment_rollup WHERE run_id = 'run-1'")[0]
    return int(row["d"]), int(row["o"]), float(row["s"]), float(row["p"])


def test_rollup_keys_relevance_and_counts_documents_once(store: Store) -> None:
    docs = [scored(i, tickers=("AAPL", "MSFT", "TSLA") if i % 2 else ()) for i in range(6)]
    assert ScoredSink(store).write(docs) == 6
    # relevance 1.0, 0.9, 0.8 (Float32) land in tenths 10, 9, 8; no ticker -> '' at 10
    assert _by_ticker(store) == {("", 10): 3, ("AAPL", 10): 3, ("MSFT", 9): 3, ("TSLA", 8): 3}
    docs_total, once, score, p_neg = _totals(store)
    assert (docs_total, once) == (12, 6)
    assert abs(score - sum(3 * d.score if d.document.tickers else d.score for d in docs)) < 1e-5
    assert p_neg > 0
    lang = store.query("SELECT DISTINCT language, novelty_tenths AS novelty FROM sentiment_rollup")
    assert [(r["language"], int(r["novelty"])) for r in lang] == [("en", 10)]


def test_redelivery_tops_up_every_rollup(store: Store) -> None:
    sink = ScoredSink(store)
    docs = [scored(i, tickers=("AAPL", "MSFT") if i % 2 else ()) for i in range(6)]
    assert sink.write(docs[:2]) == 2
    views = [r.view for r in ROLLUPS]
    for view in views:  # the crash state: documents stored, no rollup counted them
        store.execute(f"DETACH TABLE {view}")
    try:
        store.insert("scored_documents", [scored_row(d) for d in docs[2:5]])
    finally:
        for view in views:
            store.execute(f"ATTACH TABLE {view}")
    assert _totals(store)[:2] == (3, 2)
    assert sink.write(docs[2:]) == 1
    assert _totals(store)[:2] == (9, 6)
    assert _by_ticker(store) == {("", 10): 3, ("AAPL", 10): 3, ("MSFT", 9): 3}
    assert sink.write(docs) == 0
    assert _totals(store)[:2] == (9, 6)


def test_backfill_runs_once_from_stored_documents(store: Store) -> None:
    docs = [scored(i) for i in range(4)]
    ScoredSink(store).write(docs)
    store.execute(f"DROP TABLE {SENTIMENT_ROLLUP.view}")
    store.execute(f"DROP TABLE {SENTIMENT_ROLLUP.table}")
    (migration,) = [m for m in MIGRATIONS if m.version == 6]
    for statement in migration.statements:  # what `db migrate` runs on an existing store
        store.execute(statement)
    assert _totals(store)[:2] == (4, 4)
    store.execute(SENTIMENT_ROLLUP.backfill())  # a re-run inserts nothing: the table has rows
    assert _totals(store)[:2] == (4, 4)
