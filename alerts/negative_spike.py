"""`negative_spike`: a scope turns unusually negative over a short window.

Per scope (any of ticker / topic / source) over `window_minutes` ending at the cycle time, fire
when the metric reaches `threshold`, at least `min_docs` documents were seen, AND the metric is at
least `baseline_factor` x its value over the preceding `baseline_minutes` (so a ticker that is
always gloomy does not page anyone). Metrics: `negative_share` (share of documents labelled
negative) or `mean_score` (mean negativity: max(0, -mean score), so both live in [0, 1]).

SQL: the sentiment_minute SummingMergeTree (always sum()) and, for headlines,
scored_documents FINAL (base.fetch_examples), with
`%(name)s` parameters; valid on ClickHouse 18.16 and chdb (sumIf, has, no CTE/window functions).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from finsentry.alerts.base import Match, Rule, RuleSpec, ScopeKey, fetch_examples, window_end_for

if TYPE_CHECKING:
    from finsentry.store import Store


class NegativeSpikeSpec(RuleSpec):
    type: Literal["negative_spike"] = "negative_spike"
    group_by: list[ScopeKey] = Field(default_factory=lambda: ["ticker"], min_length=1,
                                     description="Scope columns; empty values are skipped")
    metric: Literal["negative_share", "mean_score"] = "negative_share"
    window_minutes: int = Field(15, ge=1, le=7 * 24 * 60)
    baseline_minutes: int = Field(24 * 60, ge=1, le=90 * 24 * 60,
                                  description="Lookback before the window for the baseline")
    threshold: float = Field(0.5, gt=0, le=1, description="Metric must reach this")
    min_docs: int = Field(5, ge=1, description="Documents needed in the window")
    baseline_factor: float = Field(2.0, ge=0, description="Metric >= factor x baseline metric")

    @field_validator("group_by")
    @classmethod
    def _unique(cls, value: list[ScopeKey]) -> list[ScopeKey]:
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate group_by columns: {value}")
        return value


_AGGREGATE_SQL = """
SELECT {keys},
       sumIf(docs, minute >= toDateTime(%(window_start)s, 'UTC')) AS win_docs,
       sumIf(docs, minute >= toDateTime(%(window_start)s, 'UTC')
                   AND sentiment = %(negative)s) AS win_neg,
       sumIf(score_sum, minute >= toDateTime(%(window_start)s, 'UTC')) AS win_score,
       sumIf(docs, minute < toDateTime(%(window_start)s, 'UTC')) AS base_docs,
       sumIf(docs, minute < toDateTime(%(window_start)s, 'UTC')
                   AND sentiment = %(negative)s) AS base_neg,
       sumIf(score_sum, minute < toDateTime(%(window_start)s, 'UTC')) AS base_score
FROM sentiment_minute
WHERE run_id = %(run_id)s
  AND minute >= toDateTime(%(baseline_start)s, 'UTC')
  AND minute < toDateTime(%(window_end)s, 'UTC')
GROUP BY {keys}
HAVING win_docs >= %(min_docs)s
ORDER BY {keys}
"""

class NegativeSpikeRule(Rule):
    spec_class = NegativeSpikeSpec
    spec: NegativeSpikeSpec

    def evaluate(self, store: Store, run_id: str, as_of: datetime,
                 examples: int = 5) -> list[Match]:
        spec = self.spec
        end = window_end_for(as_of)
        start = end - timedelta(minutes=spec.window_minutes)
        params: dict[str, Any] = {
            "run_id": run_id, "negative": "negative", "min_docs": spec.min_docs,
            "window_start": start, "window_end": end,
            "baseline_start": start - timedelta(minutes=spec.baseline_minutes),
        }
        keys = ", ".join(spec.group_by)  # Literal-validated column names, never user text
        matches: list[Match] = []
        for row in store.query(_AGGREGATE_SQL.format(keys=keys), params):
            scope: dict[str, str] = {k: str(row[k]) for k in spec.group_by}
            if not all(scope.values()):
                continue  # '' = documents naming no ticker/topic: not a scope to alert on
            value = self._metric(row["win_docs"], row["win_neg"], row["win_score"])
            baseline = self._metric(row["base_docs"], row["base_neg"], row["base_score"])
            if value < spec.threshold or value < spec.baseline_factor * baseline:
                continue
            match = Match(rule=spec.name, scope=scope, window_start=start, window_end=end,
                          metric=spec.metric, value=value, threshold=spec.threshold,
                          baseline=baseline, doc_count=int(row["win_docs"]),
                          severity=spec.severity)
            match.examples = fetch_examples(store, run_id, match, examples)
            matches.append(match)
        return matches

    def _metric(self, docs: Any, negative: Any, score_sum: Any) -> float:
        if not docs:
            return 0.0
        if self.spec.metric == "negative_share":
            return float(negative) / float(docs)
        return max(0.0, -float(score_sum) / float(docs))
