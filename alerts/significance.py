"""`significance`: the window's negative count is improbable under the key's baseline rate.

Per key and evaluated minute m, for each window length w of the scan (window_minutes plus
extra_windows: short windows catch sharp shifts on busy keys fast, long ones let a sustained
incident on a quiet key accumulate evidence): n documents, k negative in the w minutes ending
at m. Fire when, for some w,
  * P(X >= k) < alpha_w, X ~ Binomial(n, p0) - or, with baseline_uncertainty, the beta-binomial
    with p0 ~ Beta(p0 s, (1 - p0) s), s = the documents the baseline rests on, so a key with
    little history needs more evidence (it equals the binomial for long histories),
  * k / n >= min_ratio * p0 (effect size), k >= min_negatives and k / n >= min_share (floors),
  * the key is warm (documents at least warmup_minutes before m, within history_minutes).
alpha_w = p_value when set; else from false_alarms_per_key_day (hundreds of keys are tested
every minute, so the threshold comes from a false-alarm budget, not 0.05), split over the
windows: 'minutes' = budget / (1440 x windows), a union bound over every test; 'window_length'
= budget x w / (1440 x windows x scan_factor): 1440 / w effectively independent tests a day per
window, scan_factor for their overlap (bench/alerts.py measures the false alerts it gives).

Baseline rate p0: hourly buckets over the `baseline_hours` before the hour the longest window
starts in (so the window never feeds its own baseline). Hours that were themselves anomalous
(binomial tail < trim_p against the pooled rate of the hours before them) are excluded, so an
ongoing incident does not raise its own baseline. The pooled rate is shrunk towards a prior
(empirical Bayes): `prior = "global"`, the same computation over all keys of the rule, or
"fixed", `prior_rate`; weighted as `prior_docs` documents - keys with little history lean on it.
`same_hour`: the rate of the same hour of day over `same_hour_days` days (hours trimmed against
their own same-hour rate, so a daily pattern stays while incidents go), shrunk towards the
all-hours rate; a window's p0 is then its documents' mean same-hour rate.
Everything is integer cumsums over fixed horizons: the result at m does not depend on where the
evaluated range starts (live == history). `_at` computes the conditions at any set of (key,
minute) cells; the range evaluator runs it only where a cheap bound says a cell may hold
(alerts/significance_batch.py) and where an event needs its figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from finsentry.alerts.base import Batch, Conditions, KeyData, Rule, RuleSpec
from finsentry.alerts.tails import (
    betabinom_sf,
    binom_tail_below,
    tail,
    tail_below,
)

if TYPE_CHECKING:
    from finsentry.alerts.evaluate import Fetched

__all__ = ["SignificanceRule", "SignificanceSpec", "betabinom_sf"]

_MICRO = 1_000_000


class SignificanceSpec(RuleSpec):
    type: Literal["significance"] = "significance"
    metric: Literal["negative_share"] = "negative_share"
    extra_windows: list[int] = Field(default_factory=lambda: [60, 240],
                                     description="More window lengths (minutes) tested too")
    p_value: float | None = Field(None, gt=0, lt=1, description="Fixed tail-probability "
                                  "threshold; unset = from false_alarms_per_key_day")
    false_alarms_per_key_day: float = Field(0.01, gt=0, le=10, description="False-alarm budget")
    min_ratio: float = Field(1.5, ge=1, description="Window share >= min_ratio x baseline")
    min_share: float = Field(0.0, ge=0, le=1, description="Absolute floor on the window share")
    min_negatives: int = Field(4, ge=1, description="Absolute floor on negative documents")
    baseline_hours: int = Field(72, ge=1, le=24 * 60, description="Baseline lookback (hours)")
    trim_p: float = Field(1e-3, gt=0, lt=1, description="Hours this improbable are left out "
                          "of the baseline")
    alpha_split: Literal["minutes", "window_length"] = Field(
        "minutes", description="How the budget becomes a per-test threshold: 'minutes' = "
        "budget / (1440 x windows), a union bound over every minute and window; "
        "'window_length' = budget x w / (1440 x windows x scan_factor), i.e. 1440 / w "
        "effectively independent tests a day per window w, scan_factor for their overlap")
    scan_factor: float = Field(8.0, ge=1, description="Overlap allowance of 'window_length'")
    same_hour: bool = Field(False, description="Baseline from the same hour of day over the "
                            "last same_hour_days days (diurnal share), shrunk towards the "
                            "all-hours baseline")
    same_hour_days: int = Field(7, ge=1, le=30, description="Days of same-hour baseline")
    same_hour_docs: float = Field(50.0, ge=0, description="Weight (documents) of the "
                                  "all-hours baseline in the same-hour estimate")
    baseline_uncertainty: bool = Field(False, description="Beta-binomial tail: a baseline "
                                       "resting on few documents needs more evidence")
    prior: Literal["global", "fixed"] = Field(
        "global", description="What keys with little history lean on: 'global' = the pooled "
        "rate of all keys of the rule, 'fixed' = prior_rate")
    prior_docs: float = Field(30.0, ge=0, description="Weight of the prior, in documents")
    prior_rate: float = Field(0.15, gt=0, lt=1, description="Prior rate when prior = 'fixed' "
                              "(and when no key has history)")
    warmup_minutes: int = Field(24 * 60, ge=0)
    keep_firing_minutes: int = Field(15, ge=0, le=24 * 60)
    history_minutes: int = Field(72 * 60, ge=1)


Baseline = tuple[np.ndarray, np.ndarray]  # per hour: rate, and the documents behind it


def _shrunk(d: np.ndarray, n: np.ndarray, towards: np.ndarray | float,
            weight: float) -> np.ndarray:
    """n / d shrunk towards `towards` with `weight` pseudo-documents (empirical Bayes)."""
    if weight > 0:
        return (n + weight * towards) / (d + weight)
    return np.where(d > 0, n / np.maximum(d, 1), towards)


def _prefix(x: np.ndarray) -> np.ndarray:
    """Prefix sums along the last axis with a leading 0, in x's dtype when that is int32 (the
    fetch chose it because every sum fits), else int64: exact either way."""
    dtype = np.int32 if x.dtype == np.int32 else np.int64
    out = np.empty((*x.shape[:-1], x.shape[-1] + 1), dtype=dtype)
    out[..., 0] = 0
    np.cumsum(x, axis=-1, dtype=dtype, out=out[..., 1:])
    return out


def _before(x: np.ndarray, hours: int) -> np.ndarray:
    """Per hour h (last axis): the sum over hours [h - hours, h)."""
    cs = _prefix(x.astype(np.int64))
    lo = np.maximum(np.arange(x.shape[-1]) - hours, 0)
    return cs[..., :-1] - cs[..., lo]


def _same_hours(x: np.ndarray, days: int) -> np.ndarray:
    """Per hour h (last axis): the sum over hours h - 24, h - 48, ..., h - 24 x days."""
    out = np.zeros(x.shape, dtype=np.int64)
    for lag in range(24, min(24 * days, x.shape[-1] - 1) + 1, 24):
        out[..., lag:] += x[..., :-lag]
    return out


def _trim(hd: np.ndarray, hn: np.ndarray, reference: np.ndarray | float,
          trim_p: float) -> tuple[np.ndarray, np.ndarray]:
    """Hourly documents and negatives with the hours improbable under `reference` (binomial
    tail < trim_p) zeroed: an incident never feeds a baseline."""
    flagged = np.zeros(hd.shape, dtype=bool)
    busy = hn > 0
    if busy.any():
        ref = np.clip(np.broadcast_to(reference, hd.shape)[busy], 1e-9, 1 - 1e-9)
        flagged[busy] = binom_tail_below(hn[busy], hd[busy], ref, trim_p)
    return np.where(flagged, 0, hd), np.where(flagged, 0, hn)


def _pooled(hd: np.ndarray, hn: np.ndarray, hours: int, prior: np.ndarray | float,
            weight: float, trim_p: float) -> Baseline:
    """Per hour h: the trimmed pooled rate of hours [h - hours, h), shrunk towards `prior`
    (hours trimmed against the untrimmed pooled rate of the hours before them)."""
    raw = _shrunk(_before(hd, hours), _before(hn, hours), prior, weight)
    cd, cn = _trim(hd, hn, raw, trim_p)
    base_d = _before(cd, hours)
    return _shrunk(base_d, _before(cn, hours), prior, weight), base_d + weight


def _same_hour(hd: np.ndarray, hn: np.ndarray, hours: int, days: int,
               prior: np.ndarray | float, weight: float, same_weight: float,
               trim_p: float, lag: int) -> Baseline:
    """Per hour h: the rate of the same hour of day over the `days` days before, shrunk
    towards the all-hours baseline of the hours before h - lag (so no window reaching back
    `lag` hours feeds it). Hours are trimmed against their own same-hour rate, so a daily
    pattern (a busy pre-market hour) stays in its baseline while an incident does not."""
    raw_all = _shrunk(_before(hd, hours), _before(hn, hours), prior, weight)
    raw = _shrunk(_same_hours(hd, days), _same_hours(hn, days), raw_all, same_weight)
    cd, cn = _trim(hd, hn, raw, trim_p)
    rates = _shrunk(_before(cd, hours), _before(cn, hours), prior, weight)
    rates = np.concatenate((np.repeat(rates[..., :1], lag, axis=-1),
                            rates[..., :rates.shape[-1] - lag]), axis=-1)
    same_d = _same_hours(cd, days)
    return (_shrunk(same_d, _same_hours(cn, days), rates, same_weight),
            same_d + same_weight)


def _hourly(cs: np.ndarray) -> np.ndarray:
    """Hourly sums (hour 0 = index 0, the last hour possibly partial) from prefix sums."""
    m = cs.shape[-1] - 1
    edges = np.append(np.arange(0, m, 60), m)
    return (cs[..., edges[1:]] - cs[..., edges[:-1]]).astype(np.int64)


@dataclass
class _Prepared:
    """One fetch's keys as prefix sums (keys x minutes + 1) and hourly baselines (keys x hours):
    everything `_at` reads."""

    cs_d: np.ndarray
    cs_n: np.ndarray
    cs_e: np.ndarray | None  # same_hour: expected negatives, micro-units
    rates: np.ndarray
    support: np.ndarray


class SignificanceRule(Rule):
    spec_class = SignificanceSpec
    kind = "significance"
    spec: SignificanceSpec

    @property
    def windows(self) -> list[int]:
        return sorted({self.spec.window_minutes, *self.spec.extra_windows})

    @property
    def alpha(self) -> float:
        """The threshold of the headline window (window_minutes)."""
        return self.alpha_for(self.spec.window_minutes)

    def alpha_for(self, w: int) -> float:
        spec = self.spec
        if spec.p_value is not None:
            return spec.p_value
        alpha = spec.false_alarms_per_key_day / (1440 * len(self.windows))
        if spec.alpha_split == "window_length":
            alpha *= min(w / spec.scan_factor, 1440.0)
        return min(alpha, 0.5)

    def lookback_minutes(self) -> int:
        spec = self.spec
        baseline = 2 * spec.baseline_hours * 60 + max(self.windows) + 60
        if spec.same_hour:  # hours trimmed against same-hour rates of the days before them
            baseline += 2 * spec.same_hour_days * 1440
        return max(baseline, spec.history_minutes, spec.warmup_minutes) + 1

    def needs_global(self) -> bool:
        return self.spec.prior == "global"

    def _prior(self, total: KeyData | None) -> np.ndarray | float:
        spec = self.spec
        if spec.prior != "global" or total is None:
            return spec.prior_rate
        cached = getattr(self, "_cached_prior", None)
        if cached is not None and cached[0] is total:
            return cached[1]
        prior = _pooled(_hourly(_prefix(total.docs)), _hourly(_prefix(total.neg)),
                        spec.baseline_hours, spec.prior_rate, 1.0, spec.trim_p)[0]
        self._cached_prior = (total, prior)  # the same for every key of one fetch
        return prior

    def _prepare(self, cs_d: np.ndarray, cs_n: np.ndarray, total: KeyData | None) -> _Prepared:
        """Baseline rates from keys x minutes prefix sums (hour 0 = index 0)."""
        spec = self.spec
        hd, hn = _hourly(cs_d), _hourly(cs_n)
        prior = self._prior(total)
        cs_e = None
        if spec.same_hour:
            rates, support = _same_hour(hd, hn, spec.baseline_hours, spec.same_hour_days,
                                        prior, spec.prior_docs, spec.same_hour_docs,
                                        spec.trim_p, -(-max(self.windows) // 60))
            # expected negatives in integer micro-units: exact cumsums, so live == history
            micro = np.round(rates * _MICRO).astype(np.int64)
            docs = np.diff(cs_d, axis=-1)
            cs_e = _prefix(docs * np.repeat(micro, 60, axis=-1)[..., :docs.shape[-1]])
        else:
            rates, support = _pooled(hd, hn, spec.baseline_hours, prior, spec.prior_docs,
                                     spec.trim_p)
        return _Prepared(cs_d, cs_n, cs_e, rates, support)

    def conditions(self, data: KeyData, first_eval: int, n: int,
                   total: KeyData | None = None) -> Conditions:
        prep = self._prepare(_prefix(data.docs[None, :]), _prefix(data.neg[None, :]), total)
        pos = np.arange(first_eval, first_eval + n)
        return self._at(prep, np.zeros(n, dtype=np.intp), pos)

    def batch(self, fetched: Fetched, first_eval: int, n: int) -> Batch:
        from finsentry.alerts.significance_batch import SignificanceBatch

        return SignificanceBatch(self, fetched, first_eval, n)

    def _at(self, prep: _Prepared, rows: np.ndarray, pos: np.ndarray) -> Conditions:
        """Conditions of key `rows[i]` at fetched minute `pos[i]`, for any set of cells: the
        range evaluator asks only where something may hold or an event needs its figures."""
        spec = self.spec
        n = len(pos)

        def window(cs: np.ndarray, w: int) -> np.ndarray:
            return cs[rows, pos + 1] - cs[rows, np.maximum(pos + 1 - w, 0)]

        if spec.same_hour:
            # each window's p0 = its documents' mean same-hour rate; a binomial with the mean
            # rate has the heavier upper tail than the true Poisson-binomial (Hoeffding)
            cs_e = prep.cs_e if prep.cs_e is not None else prep.cs_d
            at_m = prep.rates[rows, pos // 60]
            eff = prep.support[rows, pos // 60]

            def p0_of(w: int, nd: np.ndarray) -> np.ndarray:
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(nd > 0, window(cs_e, w) / _MICRO / np.maximum(nd, 1), at_m)
        else:  # the rate of the hours before the longest window (it never feeds itself)
            hour = (pos - max(self.windows) + 1) // 60
            p0_all = prep.rates[rows, hour]
            eff = prep.support[rows, hour]

            def p0_of(w: int, nd: np.ndarray) -> np.ndarray:
                return p0_all

        best_p = np.ones(n)
        best_a = np.full(n, self.alpha)
        best_k = np.zeros(n, dtype=np.int64)
        best_n = np.zeros(n, dtype=np.int64)
        best_w = np.full(n, spec.window_minutes, dtype=np.int64)
        head_d = window(prep.cs_d, spec.window_minutes)
        head_p = best_p
        p0 = p0_of(spec.window_minutes, head_d)
        for w in self.windows:
            alpha = self.alpha_for(w)
            nd, nk = window(prep.cs_d, w), window(prep.cs_n, w)
            p0w = p0_of(w, nd)
            ok = (nk >= spec.min_negatives) & (nk >= spec.min_ratio * p0w * nd) & \
                (nk >= spec.min_share * nd) & (nd > 0)
            p = np.ones(n)
            if ok.any():
                p[ok] = tail(nk[ok], nd[ok], p0w[ok], alpha,
                             eff[ok] if spec.baseline_uncertainty else None)
            if w == spec.window_minutes:
                head_p = p
            better = p / alpha < best_p / best_a  # the most significant against its own alpha
            best_p[better], best_k[better], best_n[better] = p[better], nk[better], nd[better]
            best_w[better], best_a[better] = w, alpha
            if spec.same_hour:
                p0 = np.where(better, p0w, p0)
        quiet = best_p >= best_a  # report the headline window where nothing is significant
        best_p[quiet] = head_p[quiet]
        best_k[quiet] = window(prep.cs_n, spec.window_minutes)[quiet]
        best_n[quiet] = head_d[quiet]
        if spec.same_hour:
            p0 = np.where(quiet, p0_of(spec.window_minutes, head_d), p0)
        best_w[quiet] = spec.window_minutes
        best_a[quiet] = self.alpha
        held = (best_p < best_a) & self._warm(prep.cs_d, rows, pos)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(best_n > 0, best_k / np.maximum(best_n, 1), np.nan)
        return Conditions(held=held, value=value, baseline=p0,
                          threshold=best_a, p_value=best_p, doc_count=best_n,
                          window=best_w)

    def _held_at(self, prep: _Prepared, rows: np.ndarray, pos: np.ndarray,
                 may: np.ndarray | None = None) -> np.ndarray:
        """`_at(prep, rows, pos).held` with less work: held = warm and some window's tail
        below its own alpha (the most significant window is then below its own too), so each
        cell stops at its first such window and nothing else is computed. `may` (cells x
        windows, optional) marks the windows that can be below alpha at all (the batch's
        bound): the others are not tested."""
        spec = self.spec
        held = np.zeros(len(pos), dtype=bool)
        live = np.flatnonzero(self._warm(prep.cs_d, rows, pos))
        maxw = max(self.windows)
        # flat takes: a fraction of the cost of 2-D fancy indexing into the big arrays
        width = prep.cs_d.shape[1]
        flat_d, flat_n = prep.cs_d.reshape(-1), prep.cs_n.reshape(-1)
        flat_e = (prep.cs_e if prep.cs_e is not None else prep.cs_d).reshape(-1)
        for j, w in enumerate(self.windows):
            if not live.size:
                break
            test = live if may is None else live[may[live, j]]
            r, p = rows[test], pos[test]
            hi = r * width + p + 1
            lo = r * width + np.maximum(p + 1 - w, 0)
            nk = flat_n.take(hi) - flat_n.take(lo)
            some = np.flatnonzero(nk >= spec.min_negatives)  # the cheapest test first
            if not some.size:
                continue
            test, r, p, hi, lo, nk = test[some], r[some], p[some], hi[some], lo[some], nk[some]
            nd = flat_d.take(hi) - flat_d.take(lo)
            if spec.same_hour:
                hour = p // 60
                with np.errstate(divide="ignore", invalid="ignore"):
                    p0 = np.where(nd > 0, (flat_e.take(hi) - flat_e.take(lo))
                                  / _MICRO / np.maximum(nd, 1), prep.rates[r, hour])
            else:
                hour = (p - maxw + 1) // 60
                p0 = prep.rates[r, hour]
            ok = np.flatnonzero((nk >= spec.min_ratio * p0 * nd)
                                & (nk >= spec.min_share * nd) & (nd > 0))
            if not ok.size:
                continue
            eff = prep.support[r[ok], hour[ok]] if spec.baseline_uncertainty else None
            hit = ok[tail_below(nk[ok], nd[ok], p0[ok], self.alpha_for(w), eff)]
            held[test[hit]] = True
            live = live[~held[live]]
        return held

    def _warm(self, cs_d: np.ndarray, rows: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """`Rule.seen` at the cells: documents in [m - history + 1, m - warmup_minutes]."""
        gap = self.spec.warmup_minutes
        span = max(self.spec.history_minutes - gap, 1)
        j = np.maximum(pos - gap, 0)
        base, flat = rows * cs_d.shape[1], cs_d.reshape(-1)
        return (pos >= gap) & (flat.take(base + j + 1)
                               - flat.take(base + np.maximum(j + 1 - span, 0)) > 0)

