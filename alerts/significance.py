"""`significance`: the window's negative count is improbable under the key's baseline rate.

Per key and evaluated minute m, for each window length w (window_minutes plus extra_windows, so a
sustained incident on a quiet key accumulates evidence): n documents, k negative in the w minutes
ending at m. Fire when, for some w,
  * P(X >= k | Binomial(n, p0)) < alpha,
  * k / n >= min_ratio * p0 (effect size), k >= min_negatives and k / n >= min_share (floors),
  * the key is warm (documents at least warmup_minutes before m, within history_minutes).
alpha = p_value when set, else false_alarms_per_key_day / (1440 * number of windows): hundreds
of keys are tested every minute, so the threshold comes from a false-alarm budget, not 0.05.

Baseline rate p0: hourly buckets over the `baseline_hours` before the hour the longest window
starts in (so the window never feeds its own baseline). Hours that were themselves anomalous
(binomial tail < trim_p against the pooled rate of the hours before them) are excluded, so an
ongoing incident does not raise its own baseline. The pooled rate is shrunk towards a prior:
the same computation over all keys of the rule (global prior), or `prior_rate` with no data,
weighted as `prior_docs` documents - keys with little history lean on the prior.
Everything is integer cumsums over fixed horizons: the result at m does not depend on where the
evaluated range starts (live == history).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy.stats import binom

from finsentry.alerts.base import (
    Conditions,
    KeyData,
    Rule,
    RuleSpec,
    prefix,
    rolling,
    window_sums,
)


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
    prior_docs: float = Field(30.0, ge=0, description="Weight of the prior, in documents")
    prior_rate: float = Field(0.15, gt=0, lt=1, description="Rate when no key has history")
    warmup_minutes: int = Field(24 * 60, ge=0)
    keep_firing_minutes: int = Field(15, ge=0, le=24 * 60)
    history_minutes: int = Field(72 * 60, ge=1)


def _pooled(hd: np.ndarray, hn: np.ndarray, hours: int, prior: np.ndarray | float,
            weight: float, trim_p: float) -> np.ndarray:
    """Per hour h: the trimmed pooled rate of hours [h - hours, h), shrunk towards `prior`."""
    prev_d = np.concatenate(([0], rolling(hd, hours)[:-1]))
    prev_n = np.concatenate(([0], rolling(hn, hours)[:-1]))
    raw = (prev_n + weight * prior) / (prev_d + weight) if weight > 0 else \
        np.where(prev_d > 0, prev_n / np.maximum(prev_d, 1), prior)
    flagged = np.zeros(len(hd), dtype=bool)
    busy = hn > 0
    if busy.any():
        tail = binom.sf(hn[busy] - 1, hd[busy], np.clip(raw[busy], 1e-9, 1 - 1e-9))
        flagged[busy] = tail < trim_p
    cd, cn = np.where(flagged, 0, hd), np.where(flagged, 0, hn)
    base_d = np.concatenate(([0], rolling(cd, hours)[:-1]))
    base_n = np.concatenate(([0], rolling(cn, hours)[:-1]))
    if weight > 0:
        return (base_n + weight * prior) / (base_d + weight)
    return np.where(base_d > 0, base_n / np.maximum(base_d, 1), prior)


def _hourly(x: np.ndarray) -> np.ndarray:
    pad = (-len(x)) % 60
    return np.concatenate((x, np.zeros(pad, dtype=x.dtype))).reshape(-1, 60).sum(axis=1)


class SignificanceRule(Rule):
    spec_class = SignificanceSpec
    kind = "significance"
    spec: SignificanceSpec

    @property
    def windows(self) -> list[int]:
        return sorted({self.spec.window_minutes, *self.spec.extra_windows})

    @property
    def alpha(self) -> float:
        if self.spec.p_value is not None:
            return self.spec.p_value
        return self.spec.false_alarms_per_key_day / (1440 * len(self.windows))

    def lookback_minutes(self) -> int:
        spec = self.spec
        baseline = 2 * spec.baseline_hours * 60 + max(self.windows) + 60
        return max(baseline, spec.history_minutes, spec.warmup_minutes) + 1

    def needs_global(self) -> bool:
        return True

    def baseline_rates(self, data: KeyData, total: KeyData | None) -> np.ndarray:
        """Baseline negative rate per hour of `data` (hour 0 = data.first_minute)."""
        spec = self.spec
        prior: np.ndarray | float = spec.prior_rate
        if total is not None:
            cached = getattr(self, "_prior", None)
            if cached is not None and cached[0] is total:
                prior = cached[1]
            else:  # the same for every key of one fetch: computed once
                prior = _pooled(_hourly(total.docs), _hourly(total.neg), spec.baseline_hours,
                                spec.prior_rate, 1.0, spec.trim_p)
                self._prior = (total, prior)
        return _pooled(_hourly(data.docs), _hourly(data.neg), spec.baseline_hours, prior,
                       spec.prior_docs, spec.trim_p)

    def conditions(self, data: KeyData, first_eval: int, n: int,
                   total: KeyData | None = None) -> Conditions:
        spec = self.spec
        idx = np.arange(first_eval, first_eval + n)
        rates = self.baseline_rates(data, total)
        p0 = rates[(idx - max(self.windows) + 1) // 60]
        cs_d, cs_n = prefix(data.docs), prefix(data.neg)

        def window(cs: np.ndarray, w: int) -> np.ndarray:
            return window_sums(cs, first_eval, n, w)

        alpha = self.alpha
        best_p = np.ones(n)
        best_k = np.zeros(n, dtype=np.int64)
        best_n = np.zeros(n, dtype=np.int64)
        best_w = np.full(n, spec.window_minutes, dtype=np.int64)
        for w in self.windows:
            nd, nk = window(cs_d, w), window(cs_n, w)
            ok = (nk >= spec.min_negatives) & (nk >= spec.min_ratio * p0 * nd) & \
                (nk >= spec.min_share * nd) & (nd > 0)
            p = np.ones(n)
            if ok.any():
                p[ok] = _tail(nk[ok], nd[ok], p0[ok], alpha)
            better = p < best_p
            best_p[better], best_k[better], best_n[better] = p[better], nk[better], nd[better]
            best_w[better] = w
        quiet = best_p >= alpha  # report the headline window where nothing is significant
        best_k[quiet] = window(cs_n, spec.window_minutes)[quiet]
        best_n[quiet] = window(cs_d, spec.window_minutes)[quiet]
        best_w[quiet] = spec.window_minutes
        warm = self.seen(data.docs, first_eval, n, spec.warmup_minutes, cs_d)
        held = (best_p < alpha) & warm
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(best_n > 0, best_k / np.maximum(best_n, 1), np.nan)
        return Conditions(held=held, value=value, baseline=p0,
                          threshold=np.full(n, alpha), p_value=best_p, doc_count=best_n,
                          window=best_w)


def _tail(k: np.ndarray, n: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    """P(X >= k), X ~ Binomial(n, p): exact (scipy) where it may be below alpha; elsewhere the
    Chernoff bound exp(-n KL(k/n || p)), an upper bound, since the tail is at least that bound
    / (n + 1) and so cannot reach alpha there (saves most of the exact evaluations)."""
    q = np.clip(k / n, 1e-12, 1 - 1e-12)
    pp = np.clip(p, 1e-12, 1 - 1e-12)
    kl = q * np.log(q / pp) + (1 - q) * np.log((1 - q) / (1 - pp))
    bound = np.minimum(np.exp(-n * kl), 1.0)
    out = bound.copy()
    exact = bound / (n + 1) < alpha
    if exact.any():
        out[exact] = binom.sf(k[exact] - 1, n[exact], p[exact])
    return out
