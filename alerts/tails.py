"""Upper tails of the binomial and the beta-binomial, vectorised, with the cheap bound that
lets the significance kind skip the exact computation where it cannot matter.

`chernoff(k, n, p)` = exp(-n KL(k/n || p)) (capped at 1). Two facts about it decide what is
computed exactly: for k/n >= p it bounds the tail P(X >= k) from above, and for every k the
tail is at least P(X = k) >= chernoff / (n + 1) (method of types) - so where chernoff / (n + 1)
is not below a threshold, neither is the tail.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, gammaln
from scipy.stats import betabinom, binom

# A test "may be below alpha" is decided with this much slack on the bound (floating error of
# the bound is ~1e-12 relative): a filter only ever keeps too much, the exact tail decides.
_SLACK = 1.01


def chernoff(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    q = np.clip(k / n, 1e-12, 1 - 1e-12)
    pp = np.clip(p, 1e-12, 1 - 1e-12)
    kl = q * np.log(q / pp) + (1 - q) * np.log((1 - q) / (1 - pp))
    return np.minimum(np.exp(-n * kl), 1.0)


def may_be_below(k: np.ndarray, n: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    """False where P(X >= k), X ~ Binomial(n, p), is certainly >= alpha (n >= 1)."""
    return chernoff(k, n, p) / (n + 1) < alpha * _SLACK


def binom_tail_below(k: np.ndarray, n: np.ndarray, p: np.ndarray,
                     alpha: float) -> np.ndarray:
    """P(X >= k) < alpha, X ~ Binomial(n, p) (n >= 1), exact where the bound cannot decide."""
    out = np.zeros(len(k), dtype=bool)
    maybe = may_be_below(k, n, p, alpha)
    if maybe.any():
        out[maybe] = binom.sf(k[maybe] - 1, n[maybe], p[maybe]) < alpha
    return out


def tail_below(k: np.ndarray, n: np.ndarray, p: np.ndarray, alpha: float,
               support: np.ndarray | None = None) -> np.ndarray:
    """`tail(k, n, p, alpha, support) < alpha`, decided with less work: the same exact binomial
    where tail() computes it, and the beta-binomial only where its bounds cannot decide."""
    below = np.zeros(len(k), dtype=bool)
    exact = np.flatnonzero(chernoff(k, n, p) / (n + 1) < alpha)
    if exact.size:
        below[exact] = binom.sf(k[exact] - 1, n[exact], p[exact]) < alpha
    if support is not None:
        wide = np.flatnonzero(below)
        if wide.size:
            s, pw = support[wide], np.clip(p[wide], 1e-9, 1 - 1e-9)
            below[wide] = betabinom_below(k[wide], n[wide], pw * s, (1 - pw) * s, alpha)
    return below


def betabinom_below(k: np.ndarray, n: np.ndarray, a: np.ndarray, b: np.ndarray,
                    alpha: float) -> np.ndarray:
    """`betabinom_sf(k, n, a, b) < alpha`: the tail is at least the pmf at k, and for a, b >= 1
    (a log-concave pmf: its ratios only fall) at most pmf(k) / (1 - ratio at k); betabinom_sf
    runs only where these bounds cannot decide."""
    k, n = k.astype(np.float64), n.astype(np.float64)
    head = np.exp(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
                  + betaln(k + a, n - k + b) - betaln(a, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        r0 = np.where(k < n, (n - k) * (k + a) / ((k + 1) * (n - k - 1 + b)), 0.0)
        upper = np.where((a >= 1) & (b >= 1) & (r0 < 1), head / (1 - r0), np.inf)
    below = upper < alpha / _SLACK
    open_ = np.flatnonzero(~below & (head < alpha * _SLACK))
    if open_.size:
        below[open_] = betabinom_sf(k[open_], n[open_], a[open_], b[open_]) < alpha
    return below


def tail(k: np.ndarray, n: np.ndarray, p: np.ndarray, alpha: float,
         support: np.ndarray | None = None) -> np.ndarray:
    """P(X >= k), X ~ Binomial(n, p): exact (scipy) where it may be below alpha; elsewhere the
    Chernoff bound, an upper bound there, since the tail is at least that bound / (n + 1) and
    so cannot reach alpha (saves most of the exact evaluations).
    With `support` (documents behind p): the beta-binomial tail, p ~ Beta(p s, (1 - p) s),
    for the baseline's own uncertainty - always >= the binomial tail, so computed only where
    that one is below alpha."""
    bound = chernoff(k, n, p)
    out = bound.copy()
    exact = bound / (n + 1) < alpha
    if exact.any():
        out[exact] = binom.sf(k[exact] - 1, n[exact], p[exact])
    if support is not None:
        wide = out < alpha
        if wide.any():
            s, pw = support[wide], np.clip(p[wide], 1e-9, 1 - 1e-9)
            out[wide] = betabinom_sf(k[wide], n[wide], pw * s, (1 - pw) * s)
    return out


def betabinom_sf(k: np.ndarray, n: np.ndarray, a: np.ndarray, b: np.ndarray,
                 terms: int = 64) -> np.ndarray:
    """P(X >= k), X ~ BetaBinomial(n, a, b), vectorised: the pmf at k from log-gamma terms and
    the next `terms` pmf values by their ratios (one 2-D cumprod, no Python loop); where the
    rest is not yet negligible (past the mode the ratios only fall, so it is below a geometric
    series) scipy's betabinom.sf, ~100x slower per value, finishes the few left."""
    k, n = k.astype(np.float64), n.astype(np.float64)
    a2, b2 = a[:, None], b[:, None]
    j = k[:, None] + np.arange(terms - 1)[None, :]
    n2 = n[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(j < n2, (n2 - j) * (j + a2) / ((j + 1) * (n2 - j - 1 + b2)), 0.0)
    head = np.exp(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
                  + betaln(k + a, n - k + b) - betaln(a, b))
    pmf = head[:, None] * np.cumprod(ratio, axis=1)
    total = head + pmf.sum(axis=1)
    last, r = pmf[:, -1], np.minimum(ratio[:, -1], 0.95)
    done = (k + terms - 1 >= n) | ((ratio[:, -1] < 0.95) & (last * r / (1 - r) <= total * 1e-9))
    if not done.all():
        rest = ~done
        total[rest] = betabinom.sf(k[rest] - 1, n[rest], a[rest], b[rest])
    return np.minimum(total, 1.0)
