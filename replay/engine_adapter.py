"""RangeEvaluator over the alert engine as it stands (interim, until its range evaluation lands).

`fired` steps the rule minute by minute in process (the live engine's `Rule.evaluate` and its
realert rule: a repeat within `realert_minutes` of the last alert's window end is suppressed),
writing nothing. `series` computes the rule's metric per key over its window from
sentiment_minute. TODO(i9): replace both with the engine's one-query range evaluation.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from finsentry.errors import ReplayError
from finsentry.replay.evaluator import Fired, Point, scope_key

if TYPE_CHECKING:
    from finsentry.alerts.base import Rule
    from finsentry.store import Store


def _rule_entries(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"rules file {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
    except Exception as exc:
        raise ReplayError(f"rules file {path}: not valid: {exc}") from None
    if isinstance(data, dict) and "rules" in data:
        data = data["rules"]
    elif isinstance(data, dict) and "alerts" in data:
        data = data["alerts"].get("rules", [])
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ReplayError(f"rules file {path}: expected a rule or a list of rules")
    return data


class EngineEvaluator:
    def load_rules(self, paths: Sequence[Path]) -> list[Rule]:
        from finsentry.alerts.registry import RuleConfig, build_rule

        adapter: TypeAdapter[Any] = TypeAdapter(RuleConfig)
        rules = []
        for path in paths:
            for n, entry in enumerate(_rule_entries(path)):
                try:
                    rules.append(build_rule(adapter.validate_python(entry)))
                except ValidationError as exc:
                    first = exc.errors()[0]
                    key = ".".join(str(p) for p in first["loc"])
                    raise ReplayError(f"rules file {path}: rule {n + 1}: {key}: "
                                      f"{first['msg']}") from None
        return rules

    def rule_name(self, rule: Rule) -> str:
        return rule.name

    def metric_name(self, rule: Rule) -> str:
        return str(getattr(rule.spec, "metric", "value"))

    def fired(self, store: Store, run_id: str, rule: Rule, start: datetime,
              end: datetime) -> list[Fired]:
        realert = timedelta(minutes=rule.spec.realert_minutes)
        last: dict[str, datetime] = {}
        out: list[Fired] = []
        t = start.replace(second=0, microsecond=0)
        while t < end:
            for m in rule.evaluate(store, run_id, t, examples=0):
                key = scope_key(m.scope)
                prev = last.get(key)
                if realert and prev is not None and m.window_end - prev < realert:
                    continue
                last[key] = m.window_end
                out.append(Fired(rule.name, key, m.window_end, m.value, m.baseline, m.summary))
            t += timedelta(minutes=1)
        return out

    def series(self, store: Store, run_id: str, rule: Rule, start: datetime, end: datetime,
               keys: Sequence[str]) -> list[Point]:
        import pandas as pd

        spec = rule.spec
        group = list(getattr(spec, "group_by", ["ticker"]))
        window = int(getattr(spec, "window_minutes", 15))
        if not keys:
            return []
        cols = ", ".join(group)
        frame = store.query_df(
            f"SELECT {cols}, minute, sum(docs) AS n_docs, "
            f"sumIf(docs, sentiment = 'negative') AS neg, sum(score_sum) AS score "
            f"FROM sentiment_minute WHERE run_id = %(run)s "
            f"AND minute >= toDateTime(%(start)s, 'UTC') AND minute < toDateTime(%(end)s, 'UTC') "
            f"GROUP BY {cols}, minute ORDER BY minute",
            {"run": run_id, "start": start - timedelta(minutes=window), "end": end})
        if frame.empty:
            return []
        frame["key"] = [scope_key({c: str(r[c]) for c in group})
                        for r in frame[group].to_dict("records")]
        frame = frame[frame["key"].isin(set(keys))]
        points: list[Point] = []
        index = pd.date_range(start.replace(second=0, microsecond=0), end, freq="1min",
                              inclusive="left", tz="UTC")
        for key, part in frame.groupby("key"):
            per = part.set_index(pd.to_datetime(part["minute"], utc=True))[
                ["n_docs", "neg", "score"]].rename(columns={"n_docs": "docs"})
            per = per.astype(float).reindex(
                pd.date_range(index[0] - pd.Timedelta(minutes=window), index[-1], freq="1min",
                              tz="UTC"), fill_value=0.0)
            rolled = per.rolling(window, min_periods=1).sum().reindex(index)
            for minute, r in rolled.iterrows():
                if r["docs"] <= 0:
                    continue
                value = (r["neg"] / r["docs"] if self.metric_name(rule) == "negative_share"
                         else max(0.0, -r["score"] / r["docs"]))
                # the value at minute m is the window ending at m + 1 min (closed minutes)
                points.append(Point(str(key), minute.to_pydatetime() + timedelta(minutes=1),
                                    float(value)))
        return points
