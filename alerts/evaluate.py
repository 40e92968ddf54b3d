"""One evaluator for live cycles and history: a rule over a range of event-time minutes.

`evaluate_range(store, rule, run_id, start, end)` returns the AlertEvents that live evaluation
minute by minute over [start, end) would have produced (for, realert and warm-up included):
ONE query per rule (alerts/fetch.py) reads `sentiment_rollup` (a SummingMergeTree: always
sum()) grouped by key, summed with numpy into keys x minutes prefix sums; the rule's `batch`
decides the condition for all keys (key by key by default; the significance kind all keys at
once, alerts/significance_batch.py); the lifecycle visits only runs of minutes where it holds,
and the figures are computed only at transitions. The live loop (alerts/engine.py) calls
`run_range` over the minutes closed since its last cycle, with the state it stored.

Event time is the documents' `published_at` minute. Filters map to rollup columns: min_relevance
and min_novelty compare `relevance_tenths` / `novelty_tenths` with floor(value * 10).
Counting: grouped or filtered by ticker, a document counts once per ticker (`docs`); otherwise once
(`docs_once`, the first ticker row of each document - with min_relevance that is the first
ticker's relevance).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from finsentry.alerts.base import (
    AlertEvent,
    Conditions,
    Rule,
    RuleSpec,
    alert_id,
    epoch_minute,
    key_text,
    minute_dt,
)
from finsentry.alerts.fetch import BufferSlot, Fetched, fetch
from finsentry.alerts.lifecycle import KeyState, Lifecycle, RuleState
from finsentry.errors import AlertError

__all__ = ["BufferSlot", "Fetched", "RangeResult", "build_rule", "evaluate_fetched",
           "evaluate_range", "fetch", "lifecycle_of", "metric_series", "run_chunks", "run_range",
           "spec_hash"]

if TYPE_CHECKING:
    import pandas as pd

    from finsentry.store import Store


def build_rule(spec: RuleSpec) -> Rule:
    from finsentry.alerts.registry import RULE_TYPES

    return RULE_TYPES[getattr(spec, "type")](spec)  # noqa: B009


def _as_rule(rule: Rule | RuleSpec) -> Rule:
    return rule if isinstance(rule, Rule) else build_rule(rule)


def spec_hash(rule: Rule) -> str:
    """Changes when the rule's definition changes (stored state is then started afresh)."""
    return hashlib.sha256(rule.spec.model_dump_json().encode()).hexdigest()[:16]


@dataclass
class RangeResult:
    events: list[AlertEvent]
    state: RuleState
    keys: int  # keys evaluated


def lifecycle_of(rule: Rule) -> Lifecycle:
    s = rule.spec
    return Lifecycle(s.for_evaluations, s.realert_minutes, s.realert_exponential,
                     s.realert_max_minutes, s.keep_firing_minutes)


def run_range(store: Store, rule: Rule | RuleSpec, run_id: str, start: datetime, end: datetime,
              *, state: RuleState | None = None) -> RangeResult:
    """Events for the evaluated minutes [start, end), continuing `state` (None = fresh);
    the returned state continues at `end`."""
    rule = _as_rule(rule)
    first, stop = epoch_minute(start), epoch_minute(end)
    state = state or RuleState(spec_hash=spec_hash(rule))
    if stop <= first:
        return RangeResult([], state, 0)
    try:
        fetched = fetch(store, rule, run_id, first, stop)
    except Exception as exc:
        raise AlertError(f"rule {rule.name}: fetching {run_id} failed: {exc}") from exc
    events = evaluate_fetched(rule, run_id, fetched, first, stop, state)
    return RangeResult(events, state, len(fetched.keys))


def run_chunks(store: Store, rule: Rule | RuleSpec, run_id: str,
               bounds: Sequence[tuple[datetime, datetime]], *,
               state: RuleState | None = None) -> Iterator[RangeResult]:
    """`run_range` over consecutive ranges, the state carried from each to the next (chained
    ranges equal one range); the next range's fetch runs in a worker thread while this one is
    evaluated (the stores release the GIL in their queries), so fetch and numpy overlap."""
    from concurrent.futures import ThreadPoolExecutor

    rule = _as_rule(rule)
    state = state or RuleState(spec_hash=spec_hash(rule))
    spans = [(epoch_minute(a), epoch_minute(b)) for a, b in bounds]

    slots = (BufferSlot(), BufferSlot())  # chunk i fills slots[i % 2] while i - 1 is evaluated

    def get(i: int, first: int, stop: int) -> Fetched | None:
        if stop <= first:
            return None
        try:
            return fetch(store, rule, run_id, first, stop, slots[i % 2])
        except Exception as exc:
            raise AlertError(f"rule {rule.name}: fetching {run_id} failed: {exc}") from exc

    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(get, 0, *spans[0]) if spans else None
        for i, (first, stop) in enumerate(spans):
            assert ahead is not None
            fetched = ahead.result()
            ahead = pool.submit(get, i + 1, *spans[i + 1]) if i + 1 < len(spans) else None
            if fetched is None:
                yield RangeResult([], state, 0)
                continue
            events = evaluate_fetched(rule, run_id, fetched, first, stop, state)
            keys = len(fetched.keys)
            del fetched  # its block lives in slots[i % 2], which chunk i + 2 refills
            yield RangeResult(events, state, keys)


def evaluate_fetched(rule: Rule, run_id: str, fetched: Fetched, first: int, stop: int,
                     state: RuleState) -> list[AlertEvent]:
    """The pure part (no store): conditions per key, then the lifecycle; mutates `state`."""
    n, offset = stop - first, first - fetched.first_minute
    life = lifecycle_of(rule)
    events: list[AlertEvent] = []
    seen: set[str] = set()
    batch = rule.batch(fetched, offset, n)
    found = []
    for i, key in enumerate(fetched.keys):
        gk = key_text(key)
        seen.add(gk)
        st = state.keys.setdefault(gk, KeyState())
        moves = life.advance(batch.held(i), first, st)
        if moves:  # the figures only where an event reports them
            batch.ask(i, np.array([t.index for t in moves], dtype=np.intp))
            found.append((gk, key, moves))
    for (gk, key, moves), cond in zip(found, batch.figures(), strict=True):
        events += [_event(rule, run_id, gk, key, t.state, t.index, j, first, t.fired_minute,
                          cond) for j, t in enumerate(moves)]
    empty = np.zeros(n, dtype=bool)
    for gk, st in state.keys.items():  # keys with no data in reach: their conditions are false
        if gk not in seen and not st.idle():
            for t in life.advance(empty, first, st):
                events.append(_event(rule, run_id, gk, _parse_key(gk), t.state, t.index,
                                     t.index, first, t.fired_minute, Conditions.empty(n)))
    state.through = stop
    events.sort(key=lambda e: (e.event_time, e.group_key, e.state))
    return events


def _parse_key(gk: str) -> dict[str, str]:
    return {} if gk == "all" else dict(p.split("=", 1) for p in gk.split(","))


def _num(a: np.ndarray, i: int) -> float:
    return float(a[i])


def _event(rule: Rule, run_id: str, gk: str, key: dict[str, str], state: str, index: int,
           i: int, first: int, fired: int, cond: Conditions) -> AlertEvent:
    """The event at evaluated minute `index`; `cond` holds its figures at position `i`."""
    window = int(cond.window[i]) if cond.window is not None else rule.spec.window_minutes
    return AlertEvent(
        rule=rule.name, alert_id=alert_id(run_id, rule.name, gk, fired), group_key=gk, key=key,
        state="firing" if state == "firing" else "resolved", event_time=minute_dt(first + index),
        fired_time=minute_dt(fired), metric=rule.spec.metric, value=_num(cond.value, i),
        baseline=_num(cond.baseline, i), threshold=_num(cond.threshold, i),
        p_value=_num(cond.p_value, i), doc_count=int(cond.doc_count[i]), window_minutes=window,
        severity=rule.spec.severity, kind=rule.kind)


def evaluate_range(store: Store, rule: Rule | RuleSpec, run_id: str, start: datetime,
                   end: datetime, *, state: RuleState | None = None) -> list[AlertEvent]:
    """Every firing/resolved event the rule produces for evaluated minutes [start, end)."""
    return run_range(store, rule, run_id, start, end, state=state).events


def metric_series(store: Store, rule: Rule | RuleSpec, run_id: str, start: datetime,
                  end: datetime, *, keys: list[str] | None = None) -> pd.DataFrame:
    """Per key and evaluated minute: value, baseline, threshold, p_value, doc_count, held
    (the condition before for/realert); `keys` = group keys such as "ticker=AAPL" to keep."""
    import pandas as pd

    rule = _as_rule(rule)
    first, stop = epoch_minute(start), epoch_minute(end)
    columns = ["group_key", "minute", "value", "baseline", "threshold", "p_value", "doc_count",
               "held"]
    if stop <= first:
        return pd.DataFrame(columns=columns)
    fetched = fetch(store, rule, run_id, first, stop)
    minutes = pd.to_datetime(np.arange(first, stop) * 60, unit="s", utc=True)
    frames = []
    for key, data in zip(fetched.keys, fetched.key_data(), strict=True):
        gk = key_text(key)
        if keys is not None and gk not in keys:
            continue
        c = rule.conditions(data, first - fetched.first_minute, stop - first, fetched.total)
        frames.append(pd.DataFrame({"group_key": gk, "minute": minutes, "value": c.value,
                                    "baseline": c.baseline, "threshold": c.threshold,
                                    "p_value": c.p_value, "doc_count": c.doc_count,
                                    "held": c.held}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
