"""The range evaluator's one query per rule, and the numpy that turns its rows into prefix sums.

`fetch` reads every stored `sentiment_rollup` row of a rule's range and lookback, filtered on the
server and grouped by the rule's key (no per-minute GROUP BY), as Arrow; `_densify` sums the
rows straight into keys x minutes prefix sums (`KeyBlock`), per-key dense arrays only where a
rule kind asks (`Fetched.key_data()`). alerts/evaluate.py evaluates what this returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from finsentry.alerts.base import SCORE_SCALE, KeyBlock, KeyData, Rule, minute_dt
from finsentry.errors import AlertError

if TYPE_CHECKING:
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

        def buffer(i: int) -> np.ndarray | None:  # score rules keep their arrays: no reuse
            return None if slot is None or scores else slot.take(i, k * (minutes + 1), dtype)

        cs_docs = _prefix_sums(cell, counts, k, minutes, dtype, buffer(0))
        cs_neg = _prefix_sums(cell, packed & _MASK, k, minutes, dtype, buffer(1))
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
