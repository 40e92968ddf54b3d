"""Benchmark of the shipped default alert rule (not a test): detection quality and speed.

    python bench/alerts.py [--keys 60] [--days 7] [--seed 1] [--volumes 0.05,5]
                           [--speed-keys 500 --speed-days 30] [--skip-speed]
                           [--server 127.0.0.1:9000] [--skip-quality]

1. Quality. A generator of labelled incident streams: `--keys` tickers with volumes log-uniform
   in `--volumes` documents/minute (default 0.05-5: from a ticker with a story every 20 minutes
   to a busy one) and diurnal traffic, background negative share 8-25% (around 15%), incidents
   of 1.5x-5x the key's base share lasting 10-180 minutes (volume up to 2x during an incident).
   The shipped default rule (deploy/finsentry.toml, first rule) is evaluated over the whole
   stream by the same code as live cycles (evaluate.evaluate_fetched, i.e. evaluate_range minus
   the SQL fetch, whose equality tests/alerts/test_range.py checks). Scoring: an incident is
   detected by a same-key alert between its start and end + 30 min; an alert is true when it
   falls in such an interval. The same keys without incidents (the null stream) give the false
   alerts per key-day against the rule's budget.
   Detectability: many generated incidents hold too few documents to be seen at all (2x for 20
   minutes on a 0.05 docs/min key is ~1 document). Each incident's ORACLE POWER is the power
   of one exact binomial test of exactly the incident's documents, knowing its start, end, base
   share and size, at alpha = budget x length / 1440 (see oracle_power): an optimistic upper
   bound on any detector at the rule's false-alarm budget. Recall is reported beside the mean
   oracle power, by incident size, by key volume and by detectability (oracle power, expected
   excess negatives), with true labels and with classifier labels simulated from a stated
   confusion matrix (negative recall 0.80, 5% of other documents labelled negative; no
   confusion is stored with the shipped model, its dev macro F1 is ~0.80).
2. Speed. `--speed-keys` keys x `--speed-days` days of minute aggregates generated inside
   ClickHouse (embedded chdb) into sentiment_rollup; one rule evaluated over the whole range
   as evaluate_range does it (fetch: one query, read as Arrow into dense per-key minutes; then
   evaluate_fetched: numpy per key and the lifecycle); wall and CPU seconds of each step printed
   against the 5 s target. `--server HOST:PORT` repeats it on a ClickHouse server (18.16).
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
from typing import Any

import numpy as np
from _results import emit_report
from scipy.stats import binom

from finsentry.alerts.base import KeyData, Rule
from finsentry.alerts.evaluate import Fetched, build_rule, evaluate_fetched
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
    volume: float  # the key's mean documents/minute
    share: float = 0.15  # the key's base negative share
    docs: int = 0  # documents published during the incident
    cum_docs: np.ndarray | None = None  # documents published in its first 1, 2, ... minutes


def clf_share(p: float) -> float:
    """The negative share the simulated classifier reports when the true share is p."""
    return CONFUSION["negative_recall"] * p + CONFUSION["false_negative_rate_of_others"] * (1 - p)


DELAY_GRID = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 90, 120, 150, 180)


def oracle_delay(inc: Incident, budget: float, classifier: bool = False) -> float:
    """The first minute (on a grid) at which the oracle test of the incident's documents so
    far reaches power 0.5: a lower bound on a typical detection delay; NaN if never."""
    if inc.cum_docs is None:
        return float("nan")
    for d in DELAY_GRID:
        if d > inc.end - inc.start:
            break
        part = Incident(inc.key, inc.start, inc.start + d, inc.factor, inc.volume, inc.share,
                        int(inc.cum_docs[d - 1]))
        if oracle_power(part, budget, classifier) >= 0.5:
            return float(d)
    return float("nan")


def oracle_power(inc: Incident, budget: float, classifier: bool = False) -> float:
    """Power of an oracle that knows the incident's start, end, base share and size: ONE exact
    binomial test of the incident's documents, at alpha = budget x length / 1440 (as if a day
    held 1440 / length disjoint tests - optimistic, as the oracle needs no scan). An upper bound
    on what any detector at that false-alarm budget can catch; 0 for an incident without
    documents."""
    n = inc.docs
    if n == 0:
        return 0.0
    p0, p1 = inc.share, min(0.95, inc.share * inc.factor)
    if classifier:
        p0, p1 = clf_share(p0), clf_share(p1)
    alpha = budget * (inc.end - inc.start) / 1440
    tail = binom.sf(np.arange(n + 1) - 1, n, p0)  # P(X >= k), k = 0..n
    hits = np.flatnonzero(tail < alpha)
    return float(binom.sf(hits[0] - 1, n, p1)) if hits.size else 0.0


def generate(keys: int, days: int, seed: int, span: tuple[float, float] = (0.05, 5.0),
             incidents_on: bool = True) -> tuple[dict[str, tuple[np.ndarray, ...]],
                                                 list[Incident], dict[str, float]]:
    """Per key (docs, true negatives, classifier negatives) per minute; incidents; volumes.
    `incidents_on=False`: the same keys with no incident (the null stream: false alarms)."""
    rng = np.random.default_rng(seed)
    minutes = days * 1440
    hour = (np.arange(minutes) // 60) % 24
    diurnal = 0.25 + 0.75 * np.clip(np.sin(np.pi * (hour - 5) / 16), 0, None)  # 05-21 UTC
    series: dict[str, tuple[np.ndarray, ...]] = {}
    incidents: list[Incident] = []
    volumes: dict[str, float] = {}
    for k in range(keys):
        name = f"K{k:03d}"
        volume = float(np.exp(rng.uniform(np.log(span[0]), np.log(span[1]))))
        share = float(rng.uniform(0.08, 0.25))
        rate = volume * diurnal / diurnal.mean()
        p = np.full(minutes, share)
        t = int(rng.integers(1440 + 600, 1440 + 2000))  # first incident after the warm-up day
        while t < minutes - 240:
            length = int(rng.choice([10, 20, 45, 90, 180]))
            factor = float(rng.choice([1.5, 2.0, 3.0, 5.0]))
            boost = float(rng.uniform(1.0, 2.0))
            if incidents_on:
                p[t:t + length] = min(0.95, share * factor)
                rate[t:t + length] *= boost
                incidents.append(Incident(name, t, t + length, factor, volume, share))
            t += length + int(rng.integers(1440, 3 * 1440))
        docs = rng.poisson(rate)
        for inc in incidents:
            if inc.key == name:
                inc.docs = int(docs[inc.start:inc.end].sum())
                inc.cum_docs = np.cumsum(docs[inc.start:inc.end])
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


def _frac(hit: list[bool]) -> str:
    return f"{sum(hit)}/{len(hit)}" if hit else "-"


def qualifies(inc: Incident) -> bool:
    """The issue's target population: >= 2x the key's base share, lasting >= 20 minutes."""
    return inc.factor >= 2 and inc.end - inc.start >= 20


def score(alerts: list[tuple[str, int]], incidents: list[Incident], budget: float,
          key_days: float, classifier: bool = False) -> tuple[list[str], dict[str, float]]:
    """Report lines and the headline figures. Recall is shown beside the oracle's expected
    recall (mean oracle power) for the same incidents: the gap is the detector's; what the
    oracle misses no detector at this budget can catch."""
    by_key: dict[str, list[Incident]] = {}
    for inc in incidents:
        by_key.setdefault(inc.key, []).append(inc)
    true_alerts = sum(1 for key, t in alerts if any(
        i.start <= t <= i.end + 30 for i in by_key.get(key, [])))
    false_alerts = len(alerts) - true_alerts
    precision = true_alerts / len(alerts) if alerts else float("nan")
    delays: dict[int, int] = {}
    for n, inc in enumerate(incidents):
        hits = [t for key, t in alerts if key == inc.key and inc.start <= t <= inc.end + 30]
        if hits:
            delays[n] = min(hits) - inc.start
    power = [oracle_power(i, budget, classifier) for i in incidents]
    qual = [n for n, i in enumerate(incidents) if qualifies(i)]
    det = [n for n in qual if power[n] >= 0.9]

    def rec(group: list[int]) -> float:
        return sum(n in delays for n in group) / len(group) if group else float("nan")

    def med(group: list[int]) -> float:
        d = [delays[n] for n in group if n in delays]
        return float(np.median(d)) if d else float("nan")

    figures = {"alerts": len(alerts), "precision": precision,
               "false_alerts_per_key_day": false_alerts / key_days,
               "recall_target": rec(qual), "oracle_recall_target":
               float(np.mean([power[n] for n in qual])) if qual else float("nan"),
               "delay_target": med(qual), "recall_detectable": rec(det),
               "delay_detectable": med(det), "n_target": len(qual), "n_detectable": len(det)}
    lines = [f"alerts {len(alerts)}, true {true_alerts}, precision {precision:.3f}, false "
             f"alerts {false_alerts} = {figures['false_alerts_per_key_day']:.4f} per key-day",
             f"recall (>=2x, >=20 min) {sum(n in delays for n in qual)}/{len(qual)} = "
             f"{rec(qual):.3f} (oracle {figures['oracle_recall_target']:.3f}), median delay "
             f"{med(qual):.0f} min",
             f"recall (>=2x, >=20 min, oracle power >= 0.9) "
             f"{sum(n in delays for n in det)}/{len(det)} = {rec(det):.3f}, median delay "
             f"{med(det):.0f} min", ""]
    lines += ["By incident size (recall; oracle = mean oracle power)", "",
              "| incident size | n | recall | oracle | delay min | quiet | medium | busy |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for factor in (1.5, 2.0, 3.0, 5.0):
        for long_enough in (False, True):
            group = [n for n, i in enumerate(incidents) if i.factor == factor
                     and (i.end - i.start >= 20) == long_enough]
            if not group:
                continue
            cells = [_frac([n in delays for n in group
                            if band(incidents[n].volume).startswith(b)])
                     for b in ("quiet", "medium", "busy")]
            label = f"{factor:g}x {'>=' if long_enough else '<'}20min"
            lines.append(f"| {label} | {len(group)} | {rec(group):.2f} | "
                         f"{np.mean([power[n] for n in group]):.2f} | {med(group):.0f} | "
                         + " | ".join(cells) + " |")
    lines += ["", "Target incidents (>=2x, >=20 min) by key volume (oracle delay: median "
              "first minute the oracle reaches power 0.5)", "",
              "| key volume | n | recall | oracle | delay min | oracle delay min |",
              "|---|---:|---:|---:|---:|---:|"]
    for b in ("quiet", "medium", "busy", "all"):
        group = [n for n in qual if b == "all" or band(incidents[n].volume).startswith(b)]
        if group:
            od = [oracle_delay(incidents[n], budget, classifier) for n in group]
            od = [d for d in od if d == d]
            label = band(incidents[group[0]].volume) if b != "all" else "all"
            lines.append(f"| {label} | {len(group)} | "
                         f"{rec(group):.2f} | {np.mean([power[n] for n in group]):.2f} | "
                         f"{med(group):.0f} | "
                         f"{float(np.median(od)) if od else float('nan'):.0f} |")
    lines += ["", "Target incidents (>=2x, >=20 min) by detectability", "",
              "| detectability | n | recall | oracle | delay min |", "|---|---:|---:|---:|---:|"]
    for lo, hi in ((0.0, 0.5), (0.5, 0.9), (0.9, 1.01)):
        group = [n for n in qual if lo <= power[n] < hi]
        if group:
            lines.append(f"| oracle power {lo:g}-{min(hi, 1):g} | {len(group)} | "
                         f"{rec(group):.2f} | {np.mean([power[n] for n in group]):.2f} | "
                         f"{med(group):.0f} |")
    for lo, hi in ((0, 5), (5, 20), (20, 10**9)):
        group = [n for n in qual if lo <= excess(incidents[n], classifier) < hi]
        if group:
            label = f"excess negatives {lo}-{hi}" if hi < 10**9 else f"excess negatives >={lo}"
            lines.append(f"| {label} | {len(group)} | {rec(group):.2f} | "
                         f"{np.mean([power[n] for n in group]):.2f} | {med(group):.0f} |")
    return lines, figures


def excess(inc: Incident, classifier: bool = False) -> float:
    """Expected negative documents above the base share during the incident."""
    p0, p1 = inc.share, min(0.95, inc.share * inc.factor)
    if classifier:
        p0, p1 = clf_share(p0), clf_share(p1)
    return inc.docs * (p1 - p0)


def alerts_of(rule: Rule, data: Fetched, days: int) -> tuple[list[tuple[str, int]], float]:
    """Firing alerts (key, minute from T0) over days 2..; CPU seconds taken."""
    c0 = time.process_time()
    events = evaluate_fetched(rule, "bench", data, T0_MIN + 1440, T0_MIN + days * 1440,
                              RuleState())  # from day 2: the warm-up day is fetched
    cpu = time.process_time() - c0
    return [(e.key["ticker"], int(e.event_time.timestamp() // 60) - T0_MIN)
            for e in events if e.state == "firing"], cpu


def quality(keys: int, days: int, seed: int, volumes: tuple[float, float]) -> dict[str, Any]:
    spec = load_rules(load_settings(ROOT / "deploy" / "finsentry.toml").alerts)[0]
    rule = build_rule(spec)
    budget = float(getattr(spec, "false_alarms_per_key_day", 0.01))
    series, incidents, _ = generate(keys, days, seed, volumes)
    null, _, _ = generate(keys, days, seed + 1000, volumes, incidents_on=False)
    key_days = keys * (days - 1)
    print(f"## Quality: rule {spec.name} ({rule.kind}), {keys} keys x {days} days, volumes "
          f"{volumes[0]:g}-{volumes[1]:g} docs/min (log-uniform), {len(incidents)} incidents, "
          f"seed {seed}; oracle alpha from the rule's budget {budget:g} per key-day")
    out: dict[str, Any] = {}
    for which, label in ((1, "true labels"), (2, f"classifier labels simulated: {CONFUSION}")):
        alerts, cpu = alerts_of(rule, fetched(series, which), days)
        null_alerts, _ = alerts_of(rule, fetched(null, which), days)
        lines, figures = score(alerts, incidents, budget, key_days, classifier=which == 2)
        figures["null_false_alerts_per_key_day"] = len(null_alerts) / key_days
        out["true" if which == 1 else "classifier"] = figures
        print(f"\n### {label} ({cpu:.2f} s CPU for {keys} keys x {days - 1} days)")
        print(f"null stream (same keys, no incident): {len(null_alerts)} alerts = "
              f"{figures['null_false_alerts_per_key_day']:.4f} per key-day (budget {budget:g})")
        print("\n".join(lines))
    return out


def speed(keys: int, days: int, server: str | None = None) -> None:
    from finsentry.alerts.base import epoch_minute
    from finsentry.alerts.evaluate import fetch
    from finsentry.store import migrate, open_store

    spec = load_rules(load_settings(ROOT / "deploy" / "finsentry.toml").alerts)[0]
    rule = build_rule(spec)
    with tempfile.TemporaryDirectory() as tmp:
        if server:  # a ClickHouse server (e.g. 18.16): a database of its own, dropped after
            host, _, port = server.rpartition(":")
            settings = ClickHouseSettings(host=host, port=int(port),
                                          database=f"bench_alerts_{os.getpid()}")
        else:
            settings = ClickHouseSettings(chdb_path=Path(tmp) / "chdb", database="bench")
        with open_store(settings) as store:
            try:
                migrate(store)
                t0 = time.perf_counter()
                # ~40% of key-minutes have documents; a negative and a neutral row where they do
                # (one statement per day: a loaded server answers each within its timeout)
                for day in range(days):
                    store.execute(f"""
                        INSERT INTO sentiment_rollup (run_id, minute, language, topic, ticker,
                            relevance_tenths, source, novelty_tenths, sentiment, docs,
                            docs_once, score_sum, p_negative_sum)
                        SELECT 'bench', toDateTime({int(T0.timestamp())} + intDiv(n, {keys})
                               * 60, 'UTC'), 'en', 'markets', concat('K', toString(n % {keys})),
                               10, 'wire', 10, if(n % 7 = 0, 'negative', 'neutral'),
                               1 + n % 3, 1 + n % 3, 0, 0
                        FROM (SELECT number + {day * keys * 1440} AS n
                              FROM numbers({keys * 1440}))
                        WHERE cityHash64(n) % 5 < 2""", retry=False)
                load = time.perf_counter() - t0
                rows = store.query("SELECT count() AS n FROM sentiment_rollup")[0]["n"]
                first, stop = epoch_minute(T0), epoch_minute(T0 + timedelta(days=days))
                # evaluate_range = fetch (the one query, into dense minutes) + evaluate_fetched
                t0, c0 = time.perf_counter(), time.process_time()
                data = fetch(store, rule, "bench", first, stop)
                t1, c1 = time.perf_counter(), time.process_time()
                events = evaluate_fetched(rule, "bench", data, first, stop, RuleState())
                t2, c2 = time.perf_counter(), time.process_time()
            finally:
                if server:
                    store.execute(f"DROP DATABASE IF EXISTS {settings.database}")
    where = f"ClickHouse server {server}" if server else "embedded chdb"
    print(f"\n## Speed on {where}: {keys} keys x {days} days ({rows} rollup rows, loaded in "
          f"{load:.1f} s)")
    print("| step | wall s | CPU s (this process) |\n|---|---:|---:|")
    print(f"| fetch (one query, dense minutes) | {t1 - t0:.2f} | {c1 - c0:.2f} |")
    print(f"| evaluate_fetched (conditions, lifecycle) | {t2 - t1:.2f} | {c2 - c1:.2f} |")
    print(f"| evaluate_range({spec.name}) | {t2 - t0:.2f} | {c2 - c0:.2f} |")
    print(f"{len(events)} events; target 5 s -> ratio {(t2 - t0) / 5:.2f} (wall), "
          f"{(c2 - c0) / 5:.2f} (CPU); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs" + ("; chdb runs in this process, so its CPU is included"
                                      if not server else "; the server's CPU is not included"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=60)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed-keys", type=int, default=500)
    ap.add_argument("--speed-days", type=int, default=30)
    ap.add_argument("--volumes", default="0.05,5", help="LO,HI documents/minute per key "
                    "(log-uniform)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--server", default=None, metavar="HOST:PORT",
                    help="also time the speed part on this ClickHouse server (native port)")
    ap.add_argument("--results", type=Path, default=None, help="results folder")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: the script runs")
    args = ap.parse_args()
    if args.smoke:
        args.keys, args.days, args.speed_keys, args.speed_days = 6, 2, 20, 2
    lo, hi = (float(v) for v in args.volumes.split(","))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        figures = (quality(args.keys, args.days, args.seed, (lo, hi))
                   if not args.skip_quality else {})
        if not args.skip_speed:
            speed(args.speed_keys, args.speed_days)
            if args.server:
                speed(args.speed_keys, args.speed_days, args.server)
    emit_report("alerts", out.getvalue(), out_dir=args.results,
                meta={"keys": args.keys, "days": args.days, "speed_keys": args.speed_keys,
                      "speed_days": args.speed_days, "volumes": [lo, hi], "seed": args.seed,
                      "quality": figures})


if __name__ == "__main__":
    main()
