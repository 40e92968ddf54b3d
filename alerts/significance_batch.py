"""The significance kind over every key of one fetch at once (what the range evaluator runs):
`held` decided per block of minutes first, minute by minute only where a block may hold, and
the figures of all transitions in one call. Same results as `SignificanceRule.conditions` key by
key (tests/alerts compare them); a year of minutes for hundreds of keys costs little more than
its prefix sums (bench/backtest.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from finsentry.alerts.base import Batch, Conditions
from finsentry.alerts.significance import _prefix
from finsentry.alerts.tails import may_be_below

if TYPE_CHECKING:
    from finsentry.alerts.evaluate import Fetched
    from finsentry.alerts.significance import SignificanceRule


_BLOCK = 30  # minutes per block of the batch's filter (a divisor of 60)
_GRID = 10  # minutes between the prefix sums the filter reads
_CELLS = 1 << 20  # cells per `_at` call (bounded memory)


class SignificanceBatch(Batch):
    """Every key of one fetch at once (keys x minutes prefix sums), minute by minute only where
    something may hold. Per key and block of _BLOCK evaluated minutes and per window: K = the
    most negatives any of the block's windows holds, U = the non-negative documents all of them
    hold, p = the lowest baseline rate any of them tests against. The binomial tail falls with
    k and rises with the other documents and with p, and is at least chernoff / (n + 1)
    (alerts/tails.py), so where that bound of (K, K + U, p) is not below alpha no minute of the
    block is significant in that window (the beta-binomial is only ever computed where the
    binomial is below alpha). Typically a few percent of blocks pass: the cost is the prefix
    sums, not the statistics."""

    def __init__(self, rule: SignificanceRule, fetched: Fetched, first_eval: int,
                 n: int) -> None:
        self.rule, self.sig, self.first_eval, self.n = rule, rule, first_eval, n
        if fetched.block is None:  # built by hand (tests): the per-key arrays
            data = fetched.key_data()
            docs = np.stack([d.docs for d in data]) if data else \
                np.zeros((0, fetched.minutes), np.int64)
            neg = np.stack([d.neg for d in data]) if data else docs
            cs_d, cs_n = _prefix(docs), _prefix(neg)
        else:
            cs_d, cs_n = fetched.block.cs_docs, fetched.block.cs_neg
        self.prep = rule._prepare(cs_d, cs_n, fetched.total)
        self._held = np.zeros((len(cs_d), n), dtype=bool)
        rows, pos, may = self._candidates()
        for a in range(0, len(rows), _CELLS):
            r, p = rows[a:a + _CELLS], pos[a:a + _CELLS]
            self._held[r, p - first_eval] = rule._held_at(self.prep, r, p, may[a:a + _CELLS])
        self._asked: list[tuple[int, np.ndarray]] = []

    def held(self, i: int) -> np.ndarray:
        return self._held[i]

    def ask(self, i: int, positions: np.ndarray) -> None:
        self._asked.append((i, positions))

    def figures(self) -> list[Conditions]:
        """Every ask in one `_at` call (its cost is per call more than per cell)."""
        if not self._asked:
            return []
        rows = np.concatenate([np.full(len(p), i, dtype=np.intp) for i, p in self._asked])
        pos = np.concatenate([p for _, p in self._asked]) + self.first_eval
        cond = self.sig._at(self.prep, rows, pos)
        ends = np.cumsum([len(p) for _, p in self._asked])
        return [cond.take(np.arange(e - len(p), e)) for e, (_, p) in zip(ends, self._asked,
                                                                          strict=True)]

    def _candidates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key row, fetched minute) of every evaluated cell in a block that may hold, and per
        such cell and window (cells x windows) whether the block's bound lets that window hold:
        `_held_at` tests only those windows (a cell typically passes one or two of six)."""
        spec, prep, first, n = self.sig.spec, self.prep, self.first_eval, self.n
        keys = prep.cs_n.shape[0]
        if not keys or n <= 0:
            return (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp),
                    np.zeros((0, len(self.sig.windows)), dtype=bool))
        grid = np.arange(first // _BLOCK, (first + n - 1) // _BLOCK + 1) * _BLOCK
        s = np.maximum(grid, first)  # the block's first and last evaluated minute
        e = np.minimum(grid + _BLOCK - 1, first + n - 1)
        per_window = [np.zeros((keys, len(s)), dtype=bool) for _ in self.sig.windows]
        # the prefix sums every _GRID minutes (a small copy): counts over [a, b) are bounded
        # above by the grid interval around it and below by the one inside it
        size = prep.cs_n.shape[1] - 1
        points = np.minimum(np.arange(-(-size // _GRID) + 1) * _GRID, size)
        grid_n = prep.cs_n[:, points].astype(np.int64)
        grid_u = prep.cs_d[:, points] - grid_n  # documents that are not negative
        maxw = max(self.sig.windows)

        def floor(x: np.ndarray) -> np.ndarray:
            return x // _GRID

        def ceil(x: np.ndarray) -> np.ndarray:
            return -(-x // _GRID)

        for maybe, w in zip(per_window, self.sig.windows, strict=True):
            # K: negatives in [s - w + 1, e] (every window of the block is inside), at most
            k_hi = grid_n[:, ceil(e + 1)] - grid_n[:, floor(np.maximum(s + 1 - w, 0))]
            # U: other documents in [e - w + 1, s] (inside every window of the block), at least
            inner_hi = floor(s + 1)
            inner_lo = np.minimum(ceil(np.maximum(e - w + 1, 0)), inner_hi)
            r, b = np.nonzero(k_hi >= spec.min_negatives)
            if not len(r):
                continue
            u_lo = grid_u[r, inner_hi[b]] - grid_u[r, inner_lo[b]]  # where K can reach
            if spec.same_hour:  # a window's rate is a mean of the hours its minutes are in
                h0 = np.maximum(s[b] - w + 1, 0) // 60
                h1 = e[b] // 60
                p_lo = prep.rates[r, h1]
                for back in range(1, int((h1 - h0).max(initial=0)) + 1):
                    p_lo = np.minimum(p_lo, prep.rates[r, np.maximum(h1 - back, h0)])
                p_lo = p_lo - 1e-6  # micro-unit rounding of the expected negatives
            else:
                p_lo = np.minimum(prep.rates[r, (s[b] - maxw + 1) // 60],
                                  prep.rates[r, (e[b] - maxw + 1) // 60])
            k = k_hi[r, b]
            maybe[r, b] = may_be_below(k, k + u_lo, p_lo, self.sig.alpha_for(w))
        r, b = np.nonzero(np.logical_or.reduce(per_window))
        lengths = e[b] - s[b] + 1
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        may = np.stack([m[r, b] for m in per_window], axis=1)
        return (np.repeat(r, lengths), np.repeat(s[b], lengths) + offsets,
                np.repeat(may, lengths, axis=0))
