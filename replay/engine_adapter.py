"""RangeEvaluator backed by the alert engine's own range evaluation (finsentry.alerts.evaluate).

`fired` is `run_chunks` (one query per rule and 60-day chunk, the rule state carried across
chunks; for, realert, warm-up and keep_firing included: what live cycles minute by minute would
have fired), keeping the `firing` transitions; `series`
is `metric_series` (value and baseline per key and evaluated minute). Rules are read with the
engine's own rule-file loader. Nothing here writes to the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from finsentry.errors import ConfigError, ReplayError
from finsentry.replay.evaluator import Fired, Point

if TYPE_CHECKING:
    from finsentry.alerts.base import Rule
    from finsentry.store import Store

CHUNK = timedelta(days=60)  # per range query (~1 GB for 500 keys); the state carries across


class EngineEvaluator:
    def load_rules(self, paths: Sequence[Path]) -> list[Rule]:
        from finsentry.alerts.evaluate import build_rule
        from finsentry.alerts.rulefiles import load_rule_file

        rules: list[Rule] = []
        for path in paths:
            try:
                specs = load_rule_file(path)
            except OSError as exc:
                raise ReplayError(f"rules file {path}: {exc.strerror}") from None
            except ConfigError as exc:
                raise ReplayError(str(exc)) from None
            rules += [build_rule(spec) for spec in specs if spec.enabled]
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ReplayError(f"duplicate rule names in {', '.join(map(str, paths))}: "
                              f"{', '.join(dupes)}")
        return rules

    def rule_name(self, rule: Rule) -> str:
        return rule.name

    def metric_name(self, rule: Rule) -> str:
        return str(rule.spec.metric)

    def fired(self, store: Store, run_id: str, rule: Rule, start: datetime,
              end: datetime) -> list[Fired]:
        """`run_chunks` over chunks of CHUNK, carrying the rule state from one to the next
        (chained ranges equal one range; the next chunk is fetched while one is evaluated), so
        memory stays bounded over a year of minutes."""
        from finsentry.alerts.evaluate import run_chunks

        bounds = []
        at = start
        while at < end:
            bounds.append((at, min(end, at + CHUNK)))
            at = bounds[-1][1]
        out: list[Fired] = []
        for result in run_chunks(store, rule, run_id, bounds):
            out += [Fired(e.rule, e.group_key, e.event_time, e.value, e.baseline,
                          f"p={e.p_value:.3g} docs={e.doc_count}")
                    for e in result.events if e.state == "firing"]
        return out

    def series(self, store: Store, run_id: str, rule: Rule, start: datetime, end: datetime,
               keys: Sequence[str]) -> list[Point]:
        import math

        from finsentry.alerts.evaluate import metric_series

        if not keys:
            return []
        frame = metric_series(store, rule, run_id, start, end, keys=list(keys))
        points = []
        for gk, minute, value, baseline, docs in zip(
                frame["group_key"], frame["minute"], frame["value"], frame["baseline"],
                frame["doc_count"], strict=True):
            if not docs or not math.isfinite(float(value)):
                continue
            base = float(baseline)
            points.append(Point(str(gk), minute.to_pydatetime(), float(value),
                                base if math.isfinite(base) else None))
        return points
