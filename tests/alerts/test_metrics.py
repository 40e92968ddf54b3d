"""Every metric, group_by column and filter of the rule spec, through the store evaluator on the
real stores (chdb and 18.16): rows go straight into sentiment_rollup, threshold rules read them.
(Significance, spike, baseline and flatline have their own cases in test_kinds / test_range.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from finsentry.alerts.evaluate import evaluate_range
from finsentry.alerts.registry import RuleConfig
from finsentry.store import Store
from tests.alerts.synth import T0, rollup_rows

RULES = TypeAdapter(RuleConfig)
CALM, HOT = 120, 15  # minutes: 2 docs/min, then the last 15 min all negative with score -0.6


def _rows(ticker: str, *, hot: bool, topic: str = "markets", language: str = "en",
          source: str = "wire") -> list[dict[str, Any]]:
    calm = rollup_rows("live", ticker, [2] * CALM, [0] * CALM, source=source, score=0.2)
    end = T0 + timedelta(minutes=CALM)
    last = rollup_rows("live", ticker, [2] * HOT, [2 if hot else 0] * HOT, start=end,
                       source=source, score=-0.6 if hot else 0.2)
    return [{**r, "topic": topic, "language": language} for r in calm + last]


@pytest.fixture
def loaded(store: Store) -> Store:
    store.insert("sentiment_rollup",
                 _rows("AAPL", hot=True, topic="earnings", language="en", source="reuters")
                 + _rows("BABA", hot=True, topic="markets", language="zh", source="sina")
                 + _rows("MSFT", hot=False, source="reuters"))
    return store


def _fired(store: Store, **rule: Any) -> list[str]:
    spec = RULES.validate_python({"type": "threshold", "name": "t", "min_docs": 1,
                                  "window_minutes": 15, "history_minutes": 60, **rule})
    start = T0 + timedelta(minutes=CALM - 30)
    events = evaluate_range(store, spec, "live", start, start + timedelta(minutes=30 + HOT))
    return sorted(e.group_key for e in events if e.state == "firing")


@pytest.mark.parametrize(("rule", "keys"), [
    ({"metric": "negative_count", "value": 25}, ["ticker=AAPL", "ticker=BABA"]),
    ({"metric": "negative_share", "value": 0.9}, ["ticker=AAPL", "ticker=BABA"]),
    ({"metric": "mean_score", "op": "below", "value": -0.5}, ["ticker=AAPL", "ticker=BABA"]),
    ({"metric": "volume", "value": 31}, []),  # 30 documents per 15 minutes, everywhere
    ({"metric": "volume", "value": 30, "group_by": []}, ["all"]),
    ({"metric": "negative_count", "value": 25, "group_by": ["topic"]}, ["topic=earnings",
                                                                       "topic=markets"]),
    ({"metric": "negative_count", "value": 25, "group_by": ["source", "language"]},
     ["source=reuters,language=en", "source=sina,language=zh"]),
    ({"metric": "negative_count", "value": 1, "filter": {"topics": ["earnings"]}},
     ["ticker=AAPL"]),
    ({"metric": "negative_count", "value": 1, "filter": {"languages": ["zh"]}},
     ["ticker=BABA"]),
    ({"metric": "negative_count", "value": 1, "filter": {"sources": ["reuters"],
                                                         "tickers": ["MSFT"]}}, []),
])
def test_metrics_group_by_and_filters(loaded: Store, rule: dict[str, Any],
                                      keys: list[str]) -> None:
    assert _fired(loaded, **rule) == keys
