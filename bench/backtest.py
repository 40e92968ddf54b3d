"""Benchmark of backtests and replays (not a test): throughput from one run.

    python bench/backtest.py [--keys 500] [--days 365] [--rate 0.1] [--rules FILE]
    python bench/backtest.py --smoke          # a few keys over one day: checks the script runs

1. Backtest: `--days` of minute aggregates for `--keys` tickers (about `--rate` documents per
   key and minute, 15% negative, one burst per key) are generated straight into the rollup
   tables of a fresh embedded store (INSERT ... SELECT FROM numbers(), no documents), then each
   rule of `--rules` is evaluated over the whole range through the alert engine's range
   evaluation (`finsentry.replay.evaluator.engine_evaluator`, what `finsentry backtest` uses).
   Prints key-minutes per second per rule and the target: a year for 500 keys in <= 10 s.
2. Replay: `--replay-docs` scored documents stored under `live`, then replayed from ClickHouse
   into a new run as fast as possible (copying scores, no publishing): documents/s.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _results import emit_report

from finsentry.config import ClickHouseSettings, Settings
from finsentry.records import Document, ScoredDocument, SentimentProbs, TickerMention
from finsentry.replay.backtest import evaluate_side
from finsentry.replay.evaluator import engine_evaluator
from finsentry.replay.runner import Replayer, ReplayPlan
from finsentry.store import ScoredSink, Store, migrate, open_store

HERE = Path(__file__).resolve().parent
DEFAULT_RULES = HERE.parent / "tests" / "replay" / "rules_neg.toml"
START = datetime(2025, 1, 1, tzinfo=UTC)
TARGET_S = 10.0
TARGET_KEY_MINUTES = 500 * 365 * 24 * 60

# One row per (key, minute, sentiment) that has documents. A minute has documents with
# probability `rate`; 15% of them negative, and each key has one 45-minute burst at 80%.
_FILL = """
INSERT INTO {table} (run_id, minute, language, topic, ticker, relevance_tenths, source,
                     novelty_tenths, sentiment, docs, docs_once, score_sum, p_negative_sum)
SELECT 'live', toDateTime(%(start)s, 'UTC') + m * 60, 'en', 'markets',
       concat('K', toString(k)), 10, 'bench', 10,
       if(neg, 'negative', 'neutral'), 1, 1, if(neg, -0.8, 0.1), if(neg, 0.8, 0.1)
FROM (
    SELECT intDiv(number, %(minutes)s) AS k, number %% %(minutes)s AS m,
           cityHash64(number) %% 1000 AS r,
           (m %% 10080 >= (k * 37) %% 10000 AND m %% 10080 < (k * 37) %% 10000 + 45) AS burst,
           (cityHash64(number, 1) %% 100) < if(burst, 80, 15) AS neg
    FROM numbers(%(total)s)
)
WHERE r < %(per_mille)s OR burst
"""
_FILL_MINUTE = """
INSERT INTO sentiment_minute (run_id, minute, topic, ticker, source, sentiment, docs, score_sum)
SELECT run_id, minute, topic, ticker, source, sentiment, docs, score_sum FROM sentiment_rollup
"""


def fill(store: Store, keys: int, days: int, rate: float) -> int:
    minutes = days * 24 * 60
    store.execute(_FILL.format(table="sentiment_rollup"),
                  {"start": START, "minutes": minutes, "total": keys * minutes,
                   "per_mille": int(rate * 1000)})
    store.execute(_FILL_MINUTE)
    return int(store.query("SELECT count() AS n FROM sentiment_rollup")[0]["n"])


def bench_backtest(store: Store, keys: int, days: int, rules: Path) -> list[str]:
    end = START + timedelta(days=days)
    evaluator = engine_evaluator()
    cpu = time.process_time()  # chdb runs in this process: its threads count too
    side = evaluate_side(store, evaluator, "bench", [rules], "live", START, end, (),
                         timedelta(minutes=30), with_series=False)
    cpu = time.process_time() - cpu
    key_minutes = keys * days * 24 * 60
    lines = ["| rule | keys | days | key-minutes | alerts | seconds | CPU s (all rules) | "
             "key-minutes/s | year x 500 keys (s) | target |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for o in side.outcomes:
        rate = key_minutes / o.seconds if o.seconds > 0 else float("inf")
        projected = TARGET_KEY_MINUTES / rate
        lines.append(f"| {o.rule} | {keys} | {days} | {key_minutes:,} | {len(o.alerts)} | "
                     f"{o.seconds:.2f} | {cpu:.2f} | {rate:,.0f} | {projected:.1f} | "
                     f"{'ok' if projected <= TARGET_S else 'MISSED'} (<= {TARGET_S:.0f} s) |")
    return lines


def scored_stream(n: int, minutes: int) -> list[ScoredDocument]:
    """`n` scored documents about 50 tickers spread over `minutes` (15% negative)."""
    rng = random.Random(5)
    docs = []
    for i in range(n):
        neg = rng.random() < 0.15
        probs = SentimentProbs(negative=0.8 if neg else 0.1, neutral=0.1 if neg else 0.8,
                               positive=0.1)
        doc = Document.create(source="bench", url=f"https://bench.example/{i}",
                              title=f"headline {i}", text=f"body of story {i}",
                              published_at=START + timedelta(seconds=rng.randrange(minutes * 60)),
                              tickers=[TickerMention(symbol=f"K{i % 50}")], language="en")
        docs.append(ScoredDocument(document=doc, sentiment="negative" if neg else "neutral",
                                   sentiment_probs=probs, score=probs.positive - probs.negative,
                                   topic="markets", model_name="bench", model_version="0",
                                   run_id="live"))
    return docs


def bench_replay(store: Store, docs: int) -> list[str]:
    stream = scored_stream(docs, minutes=max(60, docs // 20))
    sink = ScoredSink(store)
    for i in range(0, len(stream), 5000):
        sink.write(stream[i:i + 5000])
    settings = Settings.model_validate({"clickhouse": store.settings.model_dump(),
                                        "replay": {"publish": False, "batch_size": 2000}})
    end = START + timedelta(minutes=max(60, docs // 20))
    result = Replayer(settings, store, ReplayPlan("bench-replay", "clickhouse", START, end),
                      progress=False).run()
    return ["| replay source | documents | seconds | documents/s |", "|---|---:|---:|---:|",
            f"| clickhouse (copy scores) | {result.stored} | {result.seconds:.2f} | "
            f"{result.docs_per_second:,.0f} |"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rate", type=float, default=0.1,
                        help="Share of key-minutes with documents")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--replay-docs", type=int, default=20_000)
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes: the script runs")
    parser.add_argument("--results", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    if args.smoke:
        args.keys, args.days, args.replay_docs = 5, 1, 300
    work = Path(tempfile.mkdtemp(prefix="finsentry-bench-"))
    try:
        settings = ClickHouseSettings(chdb_path=work / "chdb")
        with open_store(settings) as store:
            migrate(store)
            began = time.perf_counter()
            rows = fill(store, args.keys, args.days, args.rate)
            report = [f"generated {rows:,} rollup rows for {args.keys} keys x {args.days} days "
                      f"in {time.perf_counter() - began:.1f} s", "",
                      *bench_backtest(store, args.keys, args.days, args.rules), "",
                      *bench_replay(store, args.replay_docs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit_report("backtest", "\n".join(report) + "\n", out_dir=args.results,
                meta={"keys": args.keys, "days": args.days, "replay_docs": args.replay_docs})


if __name__ == "__main__":
    main()
