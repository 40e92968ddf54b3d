"""Backtest: rule sets over a run's history, through the alert engine's range evaluation.

Nothing is written: the evaluator returns what live evaluation would have fired minute by
minute over the range (same code, same semantics), and the result lives in memory until the
report is written. Two rule sets over one run (`--compare RULES2`) or one rule set over two runs
(`--compare-run ID2`, e.g. two models' replays) give two sides, reported side by side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finsentry.errors import ReplayError
from finsentry.replay.evaluator import Fired, Point, RangeEvaluator
from finsentry.replay.labels import Event, Score, score

if TYPE_CHECKING:
    from finsentry.store import Store

MAX_KEYS_PER_RULE = 12  # charts per rule: keys with alerts or events first, then the busiest


@dataclass
class RuleOutcome:
    rule: str
    metric: str
    alerts: list[Fired]
    seconds: float
    score: Score | None = None
    series: dict[str, list[Point]] = field(default_factory=dict)


@dataclass
class Side:
    """One rule set over one run."""

    name: str
    run_id: str
    rules_files: list[str]
    outcomes: list[RuleOutcome] = field(default_factory=list)
    keys: int = 0  # distinct keys with documents in the range
    model: str = ""

    def outcome(self, rule: str) -> RuleOutcome | None:
        return next((o for o in self.outcomes if o.rule == rule), None)


@dataclass
class BacktestResult:
    start: datetime
    end: datetime
    sides: list[Side]
    events: list[Event]
    grace_minutes: float

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)

    @property
    def rules(self) -> list[str]:
        names: list[str] = []
        for side in self.sides:
            names += [o.rule for o in side.outcomes if o.rule not in names]
        return names

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(),
            "minutes": self.minutes, "grace_minutes": self.grace_minutes,
            "events": [{"key": e.key, "start": e.start.isoformat(), "end": e.end.isoformat(),
                        "rule": e.rule, "label": e.label} for e in self.events],
            "sides": [{
                "name": s.name, "run_id": s.run_id, "rules_files": s.rules_files,
                "model": s.model, "keys": s.keys,
                "rules": [{
                    "rule": o.rule, "metric": o.metric, "alerts": len(o.alerts),
                    "seconds": round(o.seconds, 4),
                    "key_minutes_per_s": (round(s.keys * self.minutes / o.seconds, 1)
                                          if o.seconds > 0 else None),
                    "score": o.score.to_dict() if o.score else None,
                    "fired": [{"key": a.key, "at": a.at.isoformat(), "value": a.value,
                               "baseline": a.baseline} for a in o.alerts],
                    "series": {k: [[p.minute.isoformat(), round(p.value, 6),
                                    None if p.baseline is None else round(p.baseline, 6)]
                                   for p in pts] for k, pts in o.series.items()},
                } for o in s.outcomes],
            } for s in self.sides],
        }


def _keys_and_model(store: Store, run_id: str, start: datetime,
                    end: datetime) -> tuple[int, str]:
    rows = store.query(
        "SELECT uniqExact(ticker) AS keys FROM sentiment_rollup WHERE run_id = %(run)s "
        "AND minute >= toDateTime(%(start)s, 'UTC') AND minute < toDateTime(%(end)s, 'UTC')",
        {"run": run_id, "start": start, "end": end})
    models = store.query("SELECT DISTINCT model_name, model_version FROM scored_documents FINAL "
                         "WHERE run_id = %(run)s ORDER BY model_name LIMIT 5", {"run": run_id})
    return (int(rows[0]["keys"]) if rows else 0,
            "; ".join(f"{m['model_name']} {m['model_version']}" for m in models))


def _chart_keys(alerts: Sequence[Fired], events: Sequence[Event], rule: str,
                group_by: Sequence[str]) -> list[str]:
    ranked: dict[str, int] = {}
    for e in events:
        if e.applies_to(rule):
            key = e.key if "=" in e.key or len(group_by) != 1 else f"{group_by[0]}={e.key}"
            ranked[key] = ranked.get(key, 0) + 1000
    for a in alerts:
        ranked[a.key] = ranked.get(a.key, 0) + 1
    return sorted(ranked, key=lambda k: (-ranked[k], k))[:MAX_KEYS_PER_RULE]


def evaluate_side(store: Store, evaluator: RangeEvaluator, name: str, rule_paths: Sequence[Path],
                  run_id: str, start: datetime, end: datetime, events: Sequence[Event],
                  grace: timedelta, with_series: bool = True) -> Side:
    rules = evaluator.load_rules(rule_paths)
    if not rules:
        raise ReplayError(f"no rules in {', '.join(map(str, rule_paths))}")
    keys, model = _keys_and_model(store, run_id, start, end)
    side = Side(name, run_id, [str(p) for p in rule_paths], keys=keys, model=model)
    for rule in rules:
        began = time.perf_counter()
        alerts = evaluator.fired(store, run_id, rule, start, end)
        took = time.perf_counter() - began
        rule_name = evaluator.rule_name(rule)
        outcome = RuleOutcome(rule_name, evaluator.metric_name(rule), alerts, took)
        if events:
            outcome.score = score(rule_name, alerts, events, grace)
        side.outcomes.append(outcome)
        outcome.series = {}
        if with_series:
            chart_keys = _chart_keys(alerts, events, rule_name,
                                     list(getattr(getattr(rule, "spec", None), "group_by", [])))
            for p in evaluator.series(store, run_id, rule, start, end, chart_keys):
                outcome.series.setdefault(p.key, []).append(p)
    return side


def run_backtest(store: Store, evaluator: RangeEvaluator, rules: Sequence[Path], run_id: str,
                 start: datetime, end: datetime, *, events: Sequence[Event] = (),
                 grace_minutes: float = 30.0, compare_rules: Sequence[Path] = (),
                 compare_run: str | None = None, with_series: bool = True) -> BacktestResult:
    """Evaluate `rules` over `run_id` (and the comparison side, if any) in [start, end)."""
    if start >= end:
        raise ReplayError(f"empty range: --from {start} is not before --to {end}")
    if compare_rules and compare_run:
        raise ReplayError("--compare and --compare-run are exclusive: compare two rule sets "
                          "over one run, or one rule set over two runs")
    grace = timedelta(minutes=grace_minutes)
    sides = [evaluate_side(store, evaluator, f"A: run {run_id}", rules, run_id, start, end,
                           events, grace, with_series)]
    if compare_rules:
        sides[0].name = f"A: {', '.join(p.name for p in rules)}"
        sides.append(evaluate_side(store, evaluator,
                                   f"B: {', '.join(p.name for p in compare_rules)}",
                                   compare_rules, run_id, start, end, events, grace, with_series))
    elif compare_run:
        sides.append(evaluate_side(store, evaluator, f"B: run {compare_run}", rules, compare_run,
                                   start, end, events, grace, with_series))
    return BacktestResult(start, end, sides, list(events), grace_minutes)
