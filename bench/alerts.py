"""Benchmark of the shipped default alert rule (not a test): detection quality and speed.

    python bench/alerts.py [--keys 60] [--days 7] [--seed 1] [--speed-keys 500 --speed-days 30]

1. Quality. A generator of labelled incident streams: `--keys` tickers with volumes from 0.05 to
   5 documents/minute (log-uniform) and diurnal traffic, background negative share 8-25%
   (around 15%), incidents of 1.5x-5x the key's base share lasting 10-180 minutes (volume up to
   2x during an incident). The shipped default rule (deploy/finsentry.toml, first rule) is
   evaluated over the whole stream by the same code as live cycles (evaluate.evaluate_fetched,
   i.e. evaluate_range minus the SQL fetch, whose equality tests/alerts/test_range.py checks).
   Scoring: an incident is detected by a same-key alert between its start and end + 30 min; an
   alert is true when it falls in such an interval. Reported overall, by incident size, by key
   volume, with true labels and with classifier labels simulated from a stated confusion matrix
   (negative recall 0.80, 5% of other documents labelled negative; no confusion is stored with
   the shipped model, its dev macro F1 is ~0.80).
2. Speed. `--speed-keys` keys x `--speed-days` days of minute aggregates generated inside
   ClickHouse (embedded chdb) into sentiment_rollup; one rule evaluated over the whole range
   with evaluate_range (one query, numpy per key); seconds printed against the 5 s target.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from _results import emit_report

from finsentry.alerts.base import KeyData
from finsentry.alerts.evaluate import Fetched, build_rule, evaluate_fetched, evaluate_range
from finsentry.alerts.lifecycle import RuleState
from finsentry.alerts.rulefiles import load_rules
from finsentry.config import ClickHouseSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_MIN = int(T0.timestamp() // 60)
CONFUSION = {"negative_recall": 0.80, "false_negative_rate_of_others": 0.05}


@dataclass
class Incident:
    key: str
    start: int
    end: int
    factor: float
    volume: float


def generate(keys: int, days: int, seed: int) -> tuple[dict[str, tuple[np.ndarray, ...]],
                                                      list[Incident], dict[str, float]]:
    """Per key (docs, true negatives, classifier negatives) per minute; incidents; volumes."""
    rng = np.random.default_rng(seed)
    minutes = days * 1440
    hour = (np.arange(minutes) // 60) % 24
    diurnal = 0.25 + 0.75 * np.clip(np.sin(np.pi * (hour - 5) / 16), 0, None)  # 05-21 UTC
    series: dict[str, tuple[np.ndarray, ...]] = {}
    incidents: list[Incident] = []
    volumes: dict[str, float] = {}
    for k in range(keys):
        name = f"K{k:03d}"
        volume = float(np.exp(rng.uniform(np.log(0.05), np.log(5.0))))
        share = float(rng.uniform(0.08, 0.25))
        rate = volume * diurnal / diurnal.mean()
        p = np.full(minutes, share)
        t = int(rng.integers(1440 + 600, 1440 + 2000))  # first incident after the warm-up day
        while t < minutes - 240:
            length = int(rng.choice([10, 20, 45, 90, 180]))
            factor = float(rng.choice([1.5, 2.0, 3.0, 5.0]))
            boost = float(rng.uniform(1.0, 2.0))
            p[t:t + length] = min(0.95, share * factor)
            rate[t:t + length] *= boost
            incidents.append(Incident(name, t, t + length, factor, volume))
            t += length + int(rng.integers(1440, 3 * 1440))
        docs = rng.poisson(rate)
        neg = rng.binomial(docs, p)
        clf = rng.binomial(neg, CONFUSION["negative_recall"]) + \
            rng.binomial(docs - neg, CONFUSION["false_negative_rate_of_others"])
        series[name] = (docs, neg, clf)
        volumes[name] = volume
    return series, incidents, volumes


def fetched(series: dict[str, tuple[np.ndarray, ...]], which: int) -> Fetched:
    size = len(next(iter(series.values()))[0])
    out = Fetched(first_minute=T0_MIN, minutes=size)
    total = KeyData(*(np.zeros(size, dtype=np.int64) for _ in range(4)), first_minute=T0_MIN)
    for name, arrays in series.items():
        docs, neg = arrays[0].astype(np.int64), arrays[which].astype(np.int64)
        data = KeyData(docs, neg, np.zeros(size, dtype=np.int64), docs.copy(), T0_MIN)
        total.docs += docs
        total.neg += neg
        total.rows += docs
        out.keys.append({"ticker": name})
        out.data.append(data)
    out.total = total
    return out


def band(volume: float) -> str:
    return "quiet (<0.3/min)" if volume < 0.3 else "medium (0.3-1.5/min)" if volume < 1.5 \
        else "busy (>1.5/min)"


def score(alerts: list[tuple[str, int]], incidents: list[Incident]) -> list[str]:
    by_key: dict[str, list[Incident]] = {}
    for inc in incidents:
        by_key.setdefault(inc.key, []).append(inc)
    true_alerts = sum(1 for key, t in alerts if any(
        i.start <= t <= i.end + 30 for i in by_key.get(key, [])))
    precision = true_alerts / len(alerts) if alerts else float("nan")
    delays: dict[int, int] = {}
    for n, inc in enumerate(incidents):
        hits = [t for key, t in alerts if key == inc.key and inc.start <= t <= inc.end + 30]
        if hits:
            delays[n] = min(hits) - inc.start
    qualifying = [n for n, i in enumerate(incidents) if i.factor >= 2 and i.end - i.start >= 20]
    lines = [f"alerts {len(alerts)}, true {true_alerts}, precision {precision:.3f}"]
    rec = [n for n in qualifying if n in delays]
    med = float(np.median([delays[n] for n in rec])) if rec else float("nan")
    lines.append(f"recall (>=2x, >=20 min) {len(rec)}/{len(qualifying)} = "
                 f"{len(rec) / max(len(qualifying), 1):.3f}, median delay {med:.0f} min")
    lines.append("| incident size | n | recall | by volume: quiet | medium | busy |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for factor in (1.5, 2.0, 3.0, 5.0):
        for long_enough in (False, True):
            group = [n for n, i in enumerate(incidents) if i.factor == factor
                     and (i.end - i.start >= 20) == long_enough]
            if not group:
                continue
            cells = []
            for b in ("quiet", "medium", "busy"):
                g = [n for n in group if band(incidents[n].volume).startswith(b)]
                cells.append(f"{sum(n in delays for n in g)}/{len(g)}" if g else "-")
            label = f"{factor:g}x, {'>=' if long_enough else '<'}20 min"
            lines.append(f"| {label} | {len(group)} | "
                         f"{sum(n in delays for n in group) / len(group):.2f} | "
                         + " | ".join(cells) + " |")
    return lines


def quality(keys: int, days: int, seed: int) -> None:
    spec = load_rules(load_settings(ROOT / "deploy" / "finsentry.toml").alerts)[0]
    rule = build_rule(spec)
    series, incidents, _ = generate(keys, days, seed)
    print(f"## Quality: rule {spec.name} ({rule.kind}), {keys} keys x {days} days, "
          f"{len(incidents)} incidents, seed {seed}")
    for which, label in ((1, "true labels"), (2, f"classifier labels simulated: {CONFUSION}")):
        data = fetched(series, which)
        t0 = time.perf_counter()
        first = T0_MIN + 1440  # evaluated from day 2 (the fetch range starts at T0)
        events = evaluate_fetched(rule, "bench", data, first, T0_MIN + days * 1440,
                                  RuleState())
        seconds = time.perf_counter() - t0
        alerts = [(e.key["ticker"], int(e.event_time.timestamp() // 60) - T0_MIN)
                  for e in events if e.state == "firing"]
        print(f"\n### {label} ({seconds:.1f} s)")
        print("\n".join(score(alerts, incidents)))


def speed(keys: int, days: int) -> None:
    from finsentry.store import migrate, open_store

    spec = load_rules(load_settings(ROOT / "deploy" / "finsentry.toml").alerts)[0]
    with tempfile.TemporaryDirectory() as tmp, open_store(ClickHouseSettings(
            chdb_path=Path(tmp) / "chdb", database="bench")) as store:
        migrate(store)
        minutes = days * 1440
        t0 = time.perf_counter()
        # ~40% of key-minutes have documents; a negative and a neutral row where they do
        store.execute(f"""
            INSERT INTO sentiment_rollup (run_id, minute, language, topic, ticker,
                relevance_tenths, source, novelty_tenths, sentiment, docs, docs_once,
                score_sum, p_negative_sum)
            SELECT 'bench', toDateTime({int(T0.timestamp())} + intDiv(number, {keys}) * 60,
                   'UTC'), 'en', 'markets', concat('K', toString(number % {keys})), 10,
                   'wire', 10, if(number % 7 = 0, 'negative', 'neutral'),
                   1 + number % 3, 1 + number % 3, 0, 0
            FROM numbers({keys * minutes})
            WHERE cityHash64(number) % 5 < 2""")
        load = time.perf_counter() - t0
        rows = store.query("SELECT count() AS n FROM sentiment_rollup")[0]["n"]
        t0, c0 = time.perf_counter(), time.process_time()
        events = evaluate_range(store, spec, "bench", T0, T0 + timedelta(days=days))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\n## Speed: {keys} keys x {days} days ({rows} rollup rows, loaded in {load:.1f} s)")
    print(f"evaluate_range({spec.name}): {seconds:.2f} s wall, {cpu:.2f} s CPU (this process, "
          f"chdb included), {len(events)} events; target 5 s -> ratio {seconds / 5:.2f} "
          f"(wall); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=60)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed-keys", type=int, default=500)
    ap.add_argument("--speed-days", type=int, default=30)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--results", type=Path, default=None, help="results folder")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: the script runs")
    args = ap.parse_args()
    if args.smoke:
        args.keys, args.days, args.speed_keys, args.speed_days = 6, 2, 20, 2
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        quality(args.keys, args.days, args.seed)
        if not args.skip_speed:
            speed(args.speed_keys, args.speed_days)
    emit_report("alerts", out.getvalue(), out_dir=args.results,
                meta={"keys": args.keys, "days": args.days, "speed_keys": args.speed_keys,
                      "speed_days": args.speed_days})

if __name__ == "__main__":
    main()
