"""Benchmark of backtests and replays (not a test): throughput from one run.

    python bench/backtest.py [--keys 500] [--days 365] [--rate 0.1] [--rules FILE] [--no-shipped]
    python bench/backtest.py --smoke          # a few keys over one day: checks the script runs

1. Backtest: `--days` of minute aggregates for `--keys` tickers (about `--rate` of key-minutes
   with documents, 15% negative, one 45-minute burst per key and week) are generated straight
   into the rollup table of a fresh embedded store (INSERT ... SELECT FROM numbers(), one
   statement and part per monthly partition, so no merge runs behind the evaluation; a year
   for 500 keys takes well under a minute), then each rule of `--rules` and the shipped
   default significance rule (alerts/defaults.py: six windows, beta-binomial) are evaluated
   over the whole range through the alert engine's range evaluation
   (`finsentry.replay.evaluator.engine_evaluator`, what `finsentry backtest` uses: one query
   per rule and 60-day chunk, all keys at once). Prints key-minutes per second per rule and
   the target, a year for 500 keys in <= 10 s per rule, wall clock (the CPU column counts
   chdb's threads too). The target is stated for the bench's rule (`--rules`, windows 15 and
   60); the shipped rule is the heavier one.
2. Replay: `--replay-docs` scored documents stored under `live`, then replayed from ClickHouse
   into a new run as fast as possible (copying scores, no publishing): documents/s.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _results import emit_report

from finsentry.alerts.defaults import DEFAULT_RULES
from finsentry.config import ClickHouseSettings, Settings
from finsentry.records import Document, ScoredDocument, SentimentProbs, TickerMention
from finsentry.replay.backtest import evaluate_side
from finsentry.replay.evaluator import engine_evaluator
from finsentry.replay.runner import Replayer, ReplayPlan
from finsentry.store import ScoredSink, Store, migrate, open_store

HERE = Path(__file__).resolve().parent
BENCH_RULES = HERE.parent / "tests" / "replay" / "rules_neg.toml"
START = datetime(2025, 1, 1, tzinfo=UTC)
TARGET_S = 10.0
TARGET_KEY_MINUTES = 500 * 365 * 24 * 60

# One row per (key, minute) that has documents, for the minutes [m0, m0 + span) of every key: a
# minute has documents with probability `rate` (a hash of key and minute, so the data does not
# depend on how the range is split), 15% of them negative, and each key has one 45-minute burst a
# week at 80%. The hash that draws the sentiment runs only on the rows kept.
_FILL = """
INSERT INTO sentiment_rollup (run_id, minute, language, topic, ticker, relevance_tenths, source,
                              novelty_tenths, sentiment, docs, docs_once, score_sum,
                              p_negative_sum)
SELECT 'live', toDateTime(%(start)s, 'UTC') + m * 60, 'en', 'markets',
       concat('K', toString(k)), 10, 'bench', 10,
       if(neg, 'negative', 'neutral'), 1, 1, if(neg, -0.8, 0.1), if(neg, 0.8, 0.1)
FROM (
    SELECT k, m, (cityHash64(k * %(minutes)s + m, 1) %% 100) < if(burst, 80, 15) AS neg
    FROM (
        SELECT intDiv(number, %(span)s) AS k, %(m0)s + number %% %(span)s AS m,
               (m %% 10080 >= (k * 37) %% 10000 AND m %% 10080 < (k * 37) %% 10000 + 45) AS burst
        FROM numbers(%(cells)s)
    )
    WHERE cityHash64(k * %(minutes)s + m) %% 1000 < %(per_mille)s OR burst
)
SETTINGS min_insert_block_size_rows = 100000000, min_insert_block_size_bytes = 0,
         optimize_on_insert = 0
"""


def fill(store: Store, keys: int, days: int, rate: float) -> int:
    """The rollup rows, one statement (one block, so one part) per calendar month: the table
    is partitioned by month, so no background merge is left to compete with the evaluation."""
    minutes = days * 24 * 60
    m0 = 0
    while m0 < minutes:
        at = START + timedelta(minutes=m0)
        month = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
        span = min(int((month - at).total_seconds()) // 60, minutes - m0)
        store.execute(_FILL, {"start": START, "minutes": minutes, "m0": m0, "span": span,
                              "cells": keys * span, "per_mille": int(rate * 1000)})
        m0 += span
    return int(store.query("SELECT count() AS n FROM sentiment_rollup")[0]["n"])


def shipped_rules(folder: Path) -> Path:
    """The shipped default significance rule as a rule file (JSON is YAML)."""
    path = folder / "shipped.yaml"
    path.write_text(json.dumps({"rules": [r for r in DEFAULT_RULES
                                          if r["type"] == "significance"]}))
    return path


def bench_backtest(store: Store, keys: int, days: int, rule_files: list[Path]) -> list[str]:
    end = START + timedelta(days=days)
    evaluator = engine_evaluator()
    key_minutes = keys * days * 24 * 60
    lines = ["| rule | keys | days | key-minutes | alerts | seconds | CPU s (its rule file) | "
             "key-minutes/s | year x 500 keys (s) | target |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for rules in rule_files:
        cpu = time.process_time()  # chdb runs in this process: its threads count too
        side = evaluate_side(store, evaluator, "bench", [rules], "live", START, end, (),
                             timedelta(minutes=30), with_series=False)
        cpu = time.process_time() - cpu
        for o in side.outcomes:
            rate = key_minutes / o.seconds if o.seconds > 0 else float("inf")
            projected = TARGET_KEY_MINUTES / rate
            lines.append(f"| {o.rule} | {keys} | {days} | {key_minutes:,} | {len(o.alerts)} | "
                         f"{o.seconds:.2f} | {cpu:.2f} | {rate:,.0f} | {projected:.1f} | "
                         f"{'ok' if projected <= TARGET_S else 'MISSED'} "
                         f"(<= {TARGET_S:.0f} s) |")
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
    parser.add_argument("--rules", type=Path, default=BENCH_RULES)
    parser.add_argument("--no-shipped", dest="shipped", action="store_false",
                        help="Skip the shipped default significance rule")
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
            files = [args.rules, *([shipped_rules(work)] if args.shipped else [])]
            report = [f"generated {rows:,} rollup rows for {args.keys} keys x {args.days} days "
                      f"in {time.perf_counter() - began:.1f} s", "",
                      *bench_backtest(store, args.keys, args.days, files), "",
                      *bench_replay(store, args.replay_docs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit_report("backtest", "\n".join(report) + "\n", out_dir=args.results,
                meta={"keys": args.keys, "days": args.days, "replay_docs": args.replay_docs})


if __name__ == "__main__":
    main()
