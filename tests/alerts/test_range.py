"""evaluate_range on the real stores (chdb and 18.16): one query per rule, the same events as
minute-by-minute live evaluation, filters, and history kept apart from other runs."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from pydantic import TypeAdapter

from finsentry.alerts.evaluate import evaluate_range, metric_series, run_chunks, run_range
from finsentry.alerts.registry import RuleConfig
from finsentry.store import Store
from tests.alerts.synth import T0, poisson_stream, rollup_rows

RULES = TypeAdapter(RuleConfig)
DAYS = 2
MINUTES = DAYS * 1440


def _load(store: Store) -> None:
    rng = np.random.default_rng(7)
    quiet = poisson_stream(rng, MINUTES, 1.0, 0.15)
    burst = poisson_stream(rng, MINUTES, 1.0, 0.15, [(MINUTES - 400, MINUTES - 340, 0.7)])
    store.insert("sentiment_rollup", rollup_rows("live", "MSFT", *quiet)
                 + rollup_rows("live", "AAPL", *burst, relevance=9, novelty=3))


def test_range_equals_live_minute_by_minute(store: Store) -> None:
    _load(store)
    rule = RULES.validate_python({"type": "significance", "name": "neg", "for": 2,
                                  "notify_resolved": True})
    start, end = T0 + timedelta(minutes=MINUTES - 450), T0 + timedelta(minutes=MINUTES)
    events = evaluate_range(store, rule, "live", start, end)
    assert [(e.state, e.group_key) for e in events] == [("firing", "ticker=AAPL"),
                                                       ("resolved", "ticker=AAPL")]
    fired = events[0]
    assert start + timedelta(minutes=50) <= fired.event_time <= start + timedelta(minutes=65)
    assert fired.value > 0.4 and fired.baseline < 0.25 and fired.p_value < 1e-5

    live, state = [], None
    minute = start
    while minute < end:  # 15-minute live cycles carrying the state
        result = run_range(store, rule, "live", minute, minute + timedelta(minutes=15),
                           state=state)
        live.extend(result.events)
        state, minute = result.state, minute + timedelta(minutes=15)
    assert [(e.alert_id, e.state, e.event_time) for e in live] == \
        [(e.alert_id, e.state, e.event_time) for e in events]

    # chunks fetched one ahead while the previous is evaluated (the backtest's path): the same
    bounds = [(start + timedelta(minutes=m), min(end, start + timedelta(minutes=m + 100)))
              for m in range(0, 450, 100)]
    chunked = [e for result in run_chunks(store, rule, "live", bounds) for e in result.events]
    assert [(e.alert_id, e.state, e.event_time) for e in chunked] == \
        [(e.alert_id, e.state, e.event_time) for e in events]

    assert evaluate_range(store, rule, "replay-1", start, end) == []  # another run's rows
    series = metric_series(store, rule, "live", start, end, keys=["ticker=AAPL"])
    assert len(series) == 450 and series["held"].sum() >= 2


def test_filters_map_to_tenths(store: Store) -> None:
    _load(store)
    start, end = T0 + timedelta(minutes=MINUTES - 450), T0 + timedelta(minutes=MINUTES)
    base = {"type": "significance", "name": "neg"}
    # floored to a tenth: 0.95 and 0.9 both mean relevance_tenths >= 9 (AAPL has 9)
    for extra, fires in (({"min_relevance": 1.0}, False), ({"min_relevance": 0.95}, True),
                         ({"min_novelty": 0.4}, False), ({"min_novelty": 0.35}, True),
                         ({"tickers": ["MSFT"]}, False), ({"sources": ["wire"]}, True)):
        rule = RULES.validate_python({**base, "filter": extra})
        events = evaluate_range(store, rule, "live", start, end)
        assert bool(events) == fires, extra
