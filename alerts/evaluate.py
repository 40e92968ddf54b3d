"""One evaluator for live cycles and history: a rule over a range of event-time minutes.

`evaluate_range(store, rule, run_id, start, end)` returns the AlertEvents that live evaluation
minute by minute over [start, end) would have produced (for, realert and warm-up included): ONE
query per rule reads `sentiment_rollup` (a SummingMergeTree: always sum()) grouped by key and
minute, summed with numpy into keys x minutes prefix sums; the rule's `batch` decides the
condition for all keys (Rule.batch: key by key by default; the significance kind all keys at
once, alerts/significance_batch.py), the lifecycle visits only runs of minutes where it holds,
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
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from finsentry.alerts.base import (
    SCORE_SCALE,
    AlertEvent,
    Conditions,
    KeyBlock,
    KeyData,
    Rule,
    RuleSpec,
    alert_id,
    epoch_minute,
    key_text,
    minute_dt,
)
from finsentry.alerts.lifecycle import KeyState, Lifecycle, RuleState
from finsentry.errors import AlertError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from finsentry.store import Store

# One row per stored rollup row, grouped by key on the server without a per-minute GROUP BY
# (a hash table of key x minute cells costs more than the numpy scatter that replaces it):
# `h` identifies the key (cityHash64 of its columns), `k<j>` carry the key's values on its first
# row only, `packed` = minute offset << 40 | documents << 20 | negatives (each capped at
# 2^20 - 1 per rollup row). Read as Arrow: no Python object per row on either transport.
_FETCH_SQL = """
SELECT h, {names}packed{score_cols}
FROM (
    SELECT {key_cols}groupArray(bitOr(
               bitShiftLeft(toUInt64(intDiv(toUInt32(minute), 60) - %(lo_min)s), 40),
               bitOr(bitShiftLeft(toUInt64(least({measure}, 1048575)), 20),
                     if(sentiment = 'negative', toUInt64(least({measure}, 1048575)),
                        toUInt64(0))))) AS ps{score_arrays}
    FROM sentiment_rollup
    WHERE run_id = %(run_id)s
      AND minute >= toDateTime(%(lo)s, 'UTC') AND minute < toDateTime(%(hi)s, 'UTC'){filters}{group}
)
ARRAY JOIN ps AS packed, arrayEnumerate(ps) AS i{score_join}
"""
_SCORE_ARRAYS = ", groupArray(toFloat64(score_sum)) AS ss, groupArray(toUInt64(docs)) AS rs"
_MASK = 0xFFFFF


def build_rule(spec: RuleSpec) -> Rule:
    from finsentry.alerts.registry import RULE_TYPES

    return RULE_TYPES[getattr(spec, "type")](spec)  # noqa: B009


def _as_rule(rule: Rule | RuleSpec) -> Rule:
    return rule if isinstance(rule, Rule) else build_rule(rule)


def spec_hash(rule: Rule) -> str:
    """Changes when the rule's definition changes (stored state is then started afresh)."""
    return hashlib.sha256(rule.spec.model_dump_json().encode()).hexdigest()[:16]


@dataclass
class Fetched:
    """A rule's data: one KeyData per key (dense minutes from `first_minute`), plus their sum.
    A fetch leaves `data` empty and fills `block` (prefix sums of all keys: what the kinds that
    evaluate all keys at once read); `key_data()` builds the per-key arrays when asked."""

    first_minute: int
    minutes: int
    keys: list[dict[str, str]] = field(default_factory=list)
    data: list[KeyData] = field(default_factory=list)
    total: KeyData | None = None
    block: KeyBlock | None = None

    def key_data(self) -> list[KeyData]:
        if not self.data and self.block is not None and self.keys:
            docs = np.diff(self.block.cs_docs, axis=1)
            neg = np.diff(self.block.cs_neg, axis=1)
            score = np.zeros(self.minutes, dtype=np.int64)  # shared: no scores fetched
            for a in (docs, neg, score):
                a.setflags(write=False)
            self.data = [KeyData(docs[i], neg[i], score, docs[i], self.first_minute)
                         for i in range(len(self.keys))]
        return self.data


def fetch(store: Store, rule: Rule, run_id: str, first_eval: int, end: int,
          slot: BufferSlot | None = None) -> Fetched:
    """ONE query: every stored rollup row of the lookback as (key, minute, documents,
    negatives[, score, rows]) columns, summed into dense per-key minutes with numpy.
    With `slot`, the prefix sums are written into its reused memory (see BufferSlot)."""
    spec = rule.spec
    lo = (first_eval - rule.lookback_minutes()) // 60 * 60  # hour aligned: hourly baselines
    keys = list(spec.group_by)
    f = spec.filter
    by_ticker = "ticker" in keys or bool(f.tickers)
    # '' = documents naming no ticker/topic: not a key to alert on
    clauses: list[str] = [f"{k} != ''" for k in keys]
    params: dict[str, Any] = {"run_id": run_id, "lo": minute_dt(lo), "hi": minute_dt(end),
                              "lo_min": lo}
    for column, values in (("topic", f.topics), ("ticker", f.tickers), ("source", f.sources),
                           ("language", f.languages)):
        if values:
            clauses.append(f"{column} IN %({column}s)s")
            params[f"{column}s"] = tuple(values)
    if f.min_relevance > 0:
        clauses.append("relevance_tenths >= %(min_rel)s")
        params["min_rel"] = math.floor(f.min_relevance * 10 + 1e-9)
    if f.min_novelty > 0:
        clauses.append("novelty_tenths >= %(min_nov)s")
        params["min_nov"] = math.floor(f.min_novelty * 10 + 1e-9)
    cols = ", ".join(keys)  # Literal-validated column names, never user text
    scores = spec.metric == "mean_score"
    sql = _FETCH_SQL.format(
        names="".join(f"if(i = 1, {k}, '') AS k{j}, " for j, k in enumerate(keys)),
        key_cols=f"{cols}, cityHash64({cols}) AS h, " if keys else "toUInt64(0) AS h, ",
        measure="docs" if by_ticker else "docs_once",
        score_arrays=_SCORE_ARRAYS if scores else "",
        score_cols=", s, r" if scores else "", score_join=", ss AS s, rs AS r" if scores else "",
        filters="".join(f"\n      AND {c}" for c in clauses),
        group=f"\n    GROUP BY {cols}" if keys else "")
    table = store.query_arrow(sql, params)
    return _densify(table, keys, lo, end - lo, scores, rule.needs_global(), slot)


class BufferSlot:
    """Reusable memory for one fetch's two prefix-sum arrays (documents, negatives).

    A year's backtest fetches chunk after chunk of the same shape; two fresh ~170 MB arrays per
    chunk cost a page fault per 4 KB of first touch (0.02-0.47 s per chunk, measured, and the
    spread made the figures jumpy), reused memory costs one zeroing pass. Only `run_chunks`
    uses slots: it alternates two, so a fetch never writes into the block being evaluated, and
    a chunk's block is dropped before its slot comes round again."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray | None] = [None, None]

    def take(self, which: int, size: int, dtype: type) -> np.ndarray:
        """A zeroed flat array of `size` items of `dtype` over this slot's memory."""
        nbytes = size * np.dtype(dtype).itemsize
        buf = self.arrays[which]
        if buf is None or buf.nbytes < nbytes:
            buf = self.arrays[which] = np.empty(nbytes, dtype=np.uint8)
        out: np.ndarray = buf[:nbytes].view(dtype)
        out.fill(0)
        return out


def _numpy(table: pa.Table, name: str, dtype: type = np.int64) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy()).view(dtype) if dtype is np.int64 \
        else np.asarray(table.column(name).to_numpy(), dtype=dtype)


def _densify(table: pa.Table, keys: list[str], lo: int, minutes: int, scores: bool,
             with_total: bool, slot: BufferSlot | None = None) -> Fetched:
    """Sum the query's rows into keys x minutes prefix sums of documents and negatives (the
    block); per-key dense arrays only for score rules (others build them on demand)."""
    import pyarrow.compute as pc

    out = Fetched(first_minute=lo, minutes=minutes)
    rows = table.num_rows
    if rows:
        h = _numpy(table, "h")
        if keys:  # the rows that name their key: one per key
            named = np.flatnonzero(np.asarray(pc.binary_length(table.column("k0"))) > 0)
            names = [tuple(str(v) for v in table.column(f"k{j}").take(named).to_pylist())
                     for j in range(len(keys))]
            found = list(zip(*names, strict=True))
        else:
            named, found = np.zeros(1, dtype=np.int64), [()]
        order = sorted(range(len(found)), key=lambda j: found[j])  # keys in sorted order
        rank = np.empty(len(found), dtype=np.int64)
        rank[order] = np.arange(len(found))
        hashes = h[named]
        by_hash = np.argsort(hashes)
        sorted_hashes = hashes[by_hash]
        if len(np.unique(sorted_hashes)) != len(sorted_hashes):
            raise AlertError(f"two keys of {', '.join(keys)} share a hash; cannot tell "
                             f"their rows apart")
        # rows of one key are contiguous in practice: map runs, not rows (correct either way)
        starts = np.flatnonzero(np.concatenate(([True], h[1:] != h[:-1])))
        run_key = rank[by_hash[np.searchsorted(sorted_hashes, h[starts])]]
        lengths = np.diff(np.append(starts, rows))
        packed = _numpy(table, "packed")
        cell = np.repeat(run_key * (minutes + 1), lengths)
        cell += (packed >> 40) + 1  # prefix sums: minute m sums into column m + 1
        k = len(found)
        counts = (packed >> 20) & _MASK
        # int32 when every sum of the fetch fits (cumsums of half the width run ~10x faster)
        dtype = np.int32 if int(counts.sum()) < 2**31 else np.int64
        cs_docs = _prefix_sums(cell, counts, k, minutes, dtype,
                               None if slot is None or scores else slot.take(0, k * (minutes + 1),
                                                                            dtype))
        cs_neg = _prefix_sums(cell, packed & _MASK, k, minutes, dtype,
                              None if slot is None or scores else slot.take(1, k * (minutes + 1),
                                                                           dtype))
        out.keys = [dict(zip(keys, found[j], strict=True)) for j in order]
        out.block = KeyBlock(cs_docs, cs_neg)
        if scores:  # the dense per-key arrays now, with the score sums beside them
            cell -= np.repeat(run_key + 1, lengths)  # back to keys x minutes
            ssum = np.zeros(k * minutes)
            np.add.at(ssum, cell, _numpy(table, "s", np.float64))
            score = np.round(ssum * SCORE_SCALE).astype(np.int64).reshape(k, minutes)
            nrows = np.bincount(cell, weights=_numpy(table, "r"), minlength=k * minutes) \
                .astype(np.int64).reshape(k, minutes)
            docs, neg = np.diff(cs_docs, axis=1), np.diff(cs_neg, axis=1)
            for a in (docs, neg, score, nrows):
                a.setflags(write=False)
            out.data = [KeyData(docs[i], neg[i], score[i], nrows[i], first_minute=lo)
                        for i in range(k)]
        if with_total:  # from the rows (a dense sum over keys reads every cell)
            minute = packed >> 40
            total_docs = np.bincount(minute, weights=counts, minlength=minutes).astype(np.int64)
            total_neg = np.bincount(minute, weights=packed & _MASK, minlength=minutes) \
                .astype(np.int64)
            out.total = KeyData(total_docs, total_neg,
                                score.sum(axis=0) if scores else np.zeros(minutes, np.int64),
                                nrows.sum(axis=0) if scores else total_docs, first_minute=lo)
    elif with_total:
        out.total = _empty(minutes, lo)
    return out


def _prefix_sums(cell: np.ndarray, values: np.ndarray, keys: int, minutes: int,
                 dtype: type, zeroed: np.ndarray | None = None) -> np.ndarray:
    """Keys x (minutes + 1) prefix sums of `values` (>= 0) at `cell`, straight from the rows
    (no dense per-minute array first). Several rollup rows may share a minute, but mostly none
    do: assigned, the array's sum equals the values' sum exactly when every cell kept its full
    sum (what a shared cell lost is >= 0); else bincount (float64 sums, exact below 2^53)."""
    size = keys * (minutes + 1)
    out: np.ndarray = np.zeros(size, dtype=dtype) if zeroed is None else zeroed
    out[cell] = values
    out = out.reshape(keys, minutes + 1)
    np.cumsum(out, axis=1, out=out)  # the last column then holds each key's total
    if int(out[:, -1].sum(dtype=np.int64)) != int(values.sum()):
        out = np.bincount(cell, weights=values, minlength=size).astype(dtype)
        out = out.reshape(keys, minutes + 1)
        np.cumsum(out, axis=1, out=out)
    out.setflags(write=False)
    return out


def _empty(n: int, first: int) -> KeyData:
    return KeyData(*(np.zeros(n, dtype=np.int64) for _ in range(4)), first_minute=first)


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
