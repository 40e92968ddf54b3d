"""Rule kinds and the lifecycle case by case on synthetic per-minute counts (the pure numpy
layer the store evaluator runs), and the property that one range equals live minute-by-minute
evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from finsentry.alerts.base import AlertEvent
from finsentry.alerts.evaluate import Fetched, build_rule, evaluate_fetched
from finsentry.alerts.lifecycle import RuleState
from finsentry.alerts.registry import RuleConfig
from tests.alerts.synth import T0_MIN, fetched, poisson_stream

RULES = TypeAdapter(RuleConfig)


def run(rule: dict[str, Any], data: Fetched, first: int, n: int | None = None,
        state: RuleState | None = None) -> list[AlertEvent]:
    spec = build_rule(RULES.validate_python({"name": "r", **rule}))
    stop = data.first_minute + data.minutes if n is None else first + n
    return evaluate_fetched(spec, "live", data, first, stop, state or RuleState())


def firing(events: list[AlertEvent]) -> list[str]:
    return [e.group_key for e in events if e.state == "firing"]


# -- spike (ElastAlert semantics) ------------------------------------------------------------
SPIKE = {"type": "spike", "window_minutes": 10, "history_minutes": 60, "realert_minutes": 0}


def steps(*parts: tuple[int, int]) -> np.ndarray:
    """(per-minute count, minutes) pieces concatenated."""
    return np.concatenate([np.full(m, c) for c, m in parts])


def test_spike_steady_rate_never_fires() -> None:
    assert run(SPIKE, fetched({"A": (steps((5, 300)), None)}), T0_MIN + 60) == []


def test_spike_doubled_rate_fires_once_with_height_2_not_3() -> None:
    data = fetched({"A": (steps((5, 200), (10, 200)), None)})
    events = run(SPIKE, data, T0_MIN + 60)
    assert firing(events) == ["ticker=A"]
    assert events[0].event_time.timestamp() // 60 == T0_MIN + 209  # window fully doubled
    assert (events[0].value, events[0].baseline) == (100, 50)
    assert run({**SPIKE, "spike_height": 3}, data, T0_MIN + 60) == []


def test_spike_no_refire_while_level_stays_high() -> None:
    events = run(SPIKE, fetched({"A": (steps((5, 200), (10, 400)), None)}), T0_MIN + 60)
    assert [e.state for e in events] == ["firing", "resolved"]


def test_spike_down() -> None:
    data = fetched({"A": (steps((10, 200), (2, 200)), None)})
    assert run(SPIKE, data, T0_MIN + 60) == []  # up only by default
    assert firing(run({**SPIKE, "spike_type": "down"}, data, T0_MIN + 60)) == ["ticker=A"]
    assert firing(run({**SPIKE, "spike_type": "both"}, data, T0_MIN + 60)) == ["ticker=A"]


def test_spike_thresholds_block() -> None:
    data = fetched({"A": (steps((5, 200), (10, 200)), None)})
    assert run({**SPIKE, "threshold_cur": 101}, data, T0_MIN + 60) == []
    assert run({**SPIKE, "threshold_ref": 51}, data, T0_MIN + 60) == []
    assert firing(run({**SPIKE, "threshold_cur": 100, "threshold_ref": 50}, data,
                      T0_MIN + 60)) == ["ticker=A"]


def test_spike_on_one_key_does_not_fire_another() -> None:
    data = fetched({"A": (steps((5, 400)), None), "B": (steps((5, 200), (10, 200)), None)})
    assert firing(run(SPIKE, data, T0_MIN + 60)) == ["ticker=B"]


def test_spike_new_key_only_with_alert_on_new_data() -> None:
    data = fetched({"A": (steps((0, 200), (5, 200)), None)})
    assert run(SPIKE, data, T0_MIN + 60) == []
    events = run({**SPIKE, "alert_on_new_data": True}, data, T0_MIN + 60)
    assert firing(events) == ["ticker=A"] and events[0].baseline == 0


def test_spike_no_data_never_fires() -> None:
    assert run({**SPIKE, "alert_on_new_data": True, "spike_type": "both"},
               fetched({"A": (steps((0, 400)), None)}), T0_MIN + 60) == []
    assert run(SPIKE, fetched({}), T0_MIN + 60, 10) == []


def test_spike_needs_two_timeframes_of_data() -> None:
    # data starts 5 minutes before the jump: no alert before a full reference window, and
    # once there is one the jump is too small; 20 minutes of data: it fires
    data = fetched({"A": (steps((0, 195), (5, 5), (10, 200)), None)})
    assert run(SPIKE, data, T0_MIN + 195, 40) == []
    data = fetched({"A": (steps((0, 180), (5, 20), (10, 200)), None)})
    assert firing(run(SPIKE, data, T0_MIN + 195, 40)) == ["ticker=A"]


# -- significance ----------------------------------------------------------------------------
SIG = {"type": "significance", "baseline_hours": 24, "warmup_minutes": 600,
       "history_minutes": 1440}


def background(minutes: int = 3 * 1440, rate: float = 1.0, seed: int = 1) -> tuple[Any, Any]:
    return poisson_stream(np.random.default_rng(seed), minutes, rate, 0.15)


def with_window(docs: Any, neg: Any, n: int, k: int) -> tuple[Any, Any]:
    """Replace the last 15 minutes with n documents, k negative."""
    docs, neg = docs.copy(), neg.copy()
    docs[-15:], neg[-15:] = 0, 0
    docs[-15:][: 15] += np.bincount(np.arange(n) % 15, minlength=15)
    neg[-15:] += np.bincount(np.arange(k) % 15, minlength=15)
    return docs, neg


def last_minute(rule: dict[str, Any], series: dict[str, tuple[Any, Any]]) -> list[AlertEvent]:
    data = fetched(series)
    return run(rule, data, data.first_minute + data.minutes - 1)


def test_significance_small_window_needs_overwhelming_evidence() -> None:
    docs, neg = background()
    assert last_minute(SIG, {"A": with_window(docs, neg, 5, 3)}) == []
    events = last_minute(SIG, {"A": with_window(docs, neg, 60, 30)})
    assert firing(events) == ["ticker=A"]
    e = events[0]
    assert e.value == 0.5 and 0.1 < e.baseline < 0.2 and e.p_value < e.threshold < 1e-4


def test_significance_busy_key_fires_on_smaller_shift() -> None:
    busy, quiet = background(rate=10.0, seed=2), background(rate=0.5, seed=3)
    # the same 2.2x shift: 150 documents decide it, 8 do not
    assert firing(last_minute(SIG, {"BUSY": with_window(*busy, 150, 50)})) == ["ticker=BUSY"]
    assert last_minute(SIG, {"QUIET": with_window(*quiet, 8, 3)}) == []


def test_significance_ongoing_incident_keeps_its_baseline() -> None:
    minutes = 3 * 1440
    docs, neg = poisson_stream(np.random.default_rng(4), minutes, 2.0, 0.15,
                               [(minutes - 600, minutes, 0.5)])  # a 10-hour incident
    data = fetched({"A": (docs, neg)})
    rule = build_rule(RULES.validate_python({"name": "r", **SIG}))
    cond = rule.conditions(data.data[0], minutes - 600, 600, data.total)
    assert cond.held[60:].mean() > 0.9  # still firing hours in
    assert cond.baseline[-1] < 0.2  # the incident hours were left out of the baseline
    events = run(SIG, data, data.first_minute + minutes - 600)
    assert [e.state for e in events] == ["firing"]


def test_significance_warmup() -> None:
    docs, neg = background(minutes=400)  # younger than the 600-minute warm-up
    assert last_minute(SIG, {"A": with_window(docs, neg, 60, 40)}) == []


# -- baseline, threshold, flatline -----------------------------------------------------------
def test_baseline_kind() -> None:
    rule = {"type": "baseline", "metric": "volume", "baseline_hours": 24, "k_sigma": 3}
    docs, _ = background(minutes=2 * 1440, rate=5.0)
    quiet = last_minute(rule, {"A": (docs, docs * 0)})
    loud = docs.copy()
    loud[-15:] *= 3
    assert quiet == [] and firing(last_minute(rule, {"A": (loud, loud * 0)})) == ["ticker=A"]


def test_threshold_kind_with_min_docs() -> None:
    rule = {"type": "threshold", "metric": "negative_share", "value": 0.5, "min_docs": 5}
    docs, neg = background(minutes=200)
    assert last_minute(rule, {"A": with_window(docs, neg, 4, 4)}) == []  # too few documents
    assert firing(last_minute(rule, {"A": with_window(docs, neg, 6, 4)})) == ["ticker=A"]
    below = {**rule, "op": "below", "value": 0.05}
    assert firing(last_minute(below, {"A": with_window(docs, neg, 20, 0)})) == ["ticker=A"]


def test_flatline_kind() -> None:
    rule = {"type": "flatline", "window_minutes": 15, "history_minutes": 120}
    data = fetched({"": (steps((3, 200), (0, 30), (3, 30)), None)}, group="")
    events = run(rule, data, T0_MIN + 120)
    assert [(e.state, e.group_key) for e in events] == [("firing", "all"), ("resolved", "all")]
    assert events[0].event_time.timestamp() // 60 == T0_MIN + 214
    assert run(rule, fetched({"": (steps((0, 300)), None)}, group=""), T0_MIN + 120) == []


# -- lifecycle: for, realert -----------------------------------------------------------------
THRESH = {"type": "threshold", "metric": "volume", "value": 5, "min_docs": 0,
          "window_minutes": 1, "history_minutes": 10, "realert_minutes": 0}


def test_for_needs_consecutive_evaluations() -> None:
    blip = fetched({"A": (steps((0, 50), (9, 2), (0, 50)), None)})
    assert run({**THRESH, "for": 3}, blip, T0_MIN + 20) == []
    held = fetched({"A": (steps((0, 50), (9, 3), (0, 50)), None)})
    events = run({**THRESH, "for": 3}, held, T0_MIN + 20)
    assert firing(events) == ["ticker=A"]
    assert events[0].event_time.timestamp() // 60 == T0_MIN + 52


def test_realert_suppresses_and_backs_off() -> None:
    data = fetched({"A": (steps((0, 50), *[(9, 2), (0, 18)] * 6), None)})  # every 20 min
    assert len(firing(run({**THRESH, "realert_minutes": 10}, data, T0_MIN + 20))) == 6
    assert len(firing(run({**THRESH, "realert_minutes": 30}, data, T0_MIN + 20))) == 3
    # exponential: 30 -> suppressed (60) -> suppressed (120) ...: only the first fires
    expo = {**THRESH, "realert_minutes": 30, "realert_exponential": True}
    assert len(firing(run(expo, data, T0_MIN + 20))) == 1


# -- history == live ------------------------------------------------------------------------
KINDS = [
    {"type": "significance", "baseline_hours": 2, "history_minutes": 180, "warmup_minutes": 60,
     "extra_windows": [30], "p_value": 0.01, "min_negatives": 2},
    {"type": "significance", "baseline_hours": 2, "history_minutes": 180, "warmup_minutes": 60,
     "extra_windows": [5, 30], "false_alarms_per_key_day": 10, "alpha_split": "window_length",
     "scan_factor": 2, "min_negatives": 2, "same_hour": True, "same_hour_days": 1,
     "same_hour_docs": 5, "prior": "fixed", "baseline_uncertainty": True},
    {**SPIKE, "alert_on_new_data": True, "spike_type": "both"},
    {"type": "baseline", "metric": "volume", "baseline_hours": 3, "min_samples": 2,
     "k_sigma": 1.5, "min_docs": 1, "history_minutes": 120},
    {"type": "threshold", "metric": "negative_share", "value": 0.4, "min_docs": 3},
    {"type": "flatline", "window_minutes": 5, "history_minutes": 60, "group_by": ["ticker"]},
]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.integers(0, len(KINDS) - 1), seed=st.integers(0, 10_000),
       chunks=st.lists(st.integers(1, 25), min_size=1, max_size=12),
       for_=st.integers(1, 3), realert=st.sampled_from([0, 7, 30]),
       expo=st.booleans(), keep=st.sampled_from([0, 3]))
def test_history_equals_live(kind: int, seed: int, chunks: list[int], for_: int, realert: int,
                             expo: bool, keep: int) -> None:
    rng = np.random.default_rng(seed)
    minutes = 900
    series = {}
    for key in ("A", "B"):
        rate = rng.choice([0.3, 1.0, 4.0])
        docs, neg = poisson_stream(rng, minutes, rate, 0.15,
                                   [(int(rng.integers(600, 850)), minutes, 0.6)])
        docs[rng.integers(600, 880):][: int(rng.integers(0, 20))] = 0  # silences
        series[key] = (docs, np.minimum(neg, docs))
    data = fetched(series)
    rule = {**KINDS[kind], "for": for_, "realert_minutes": realert,
            "realert_exponential": expo, "notify_resolved": True, "keep_firing_minutes": keep}
    first, total = T0_MIN + 600, sum(chunks)
    whole = run(rule, data, first, total)
    live, state, at = [], RuleState(), first
    for size in chunks:
        live.extend(run(rule, data, at, size, state))
        at += size
    assert [_comparable(e) for e in live] == [_comparable(e) for e in whole]


def _comparable(e: AlertEvent) -> tuple[Any, ...]:
    return (e.alert_id, e.state, e.event_time, repr(e.value), repr(e.baseline),
            repr(e.p_value), e.doc_count)
