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
evaluated range starts (live == history).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy.special import betaln, gammaln
from scipy.stats import betabinom, binom

from finsentry.alerts.base import (
    Conditions,
    KeyData,
    Rule,
    RuleSpec,
    prefix,
    rolling,
    window_sums,
)

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


def _shrunk(d: np.ndarray, n: np.ndarray, towards: np.ndarray | float,
            weight: float) -> np.ndarray:
    """n / d shrunk towards `towards` with `weight` pseudo-documents (empirical Bayes)."""
    if weight > 0:
        return (n + weight * towards) / (d + weight)
    return np.where(d > 0, n / np.maximum(d, 1), towards)


def _before(x: np.ndarray, hours: int) -> np.ndarray:
    """Per hour h: the sum over hours [h - hours, h)."""
    return np.concatenate(([0], rolling(x, hours)[:-1]))


def _same_hours(x: np.ndarray, days: int) -> np.ndarray:
    """Per hour h: the sum over hours h - 24, h - 48, ..., h - 24 x days."""
    out = np.zeros(len(x), dtype=np.int64)
    for lag in range(24, min(24 * days, len(x) - 1) + 1, 24):
        out[lag:] += x[:-lag]
    return out


def _trim(hd: np.ndarray, hn: np.ndarray, reference: np.ndarray | float,
          trim_p: float) -> tuple[np.ndarray, np.ndarray]:
    """Hourly documents and negatives with the hours improbable under `reference` (binomial
    tail < trim_p) zeroed: an incident never feeds a baseline."""
    flagged = np.zeros(len(hd), dtype=bool)
    busy = hn > 0
    if busy.any():
        ref = np.broadcast_to(reference, hd.shape)[busy]
        tail = binom.sf(hn[busy] - 1, hd[busy], np.clip(ref, 1e-9, 1 - 1e-9))
        flagged[busy] = tail < trim_p
    return np.where(flagged, 0, hd), np.where(flagged, 0, hn)


Baseline = tuple[np.ndarray, np.ndarray]  # per hour: rate, and the documents behind it


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
    rates = np.concatenate((np.full(lag, rates[0]), rates[:len(rates) - lag]))
    same_d = _same_hours(cd, days)
    return (_shrunk(same_d, _same_hours(cn, days), rates, same_weight),
            same_d + same_weight)


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

    def baseline_rates(self, data: KeyData, total: KeyData | None) -> Baseline:
        """Baseline negative rate per hour of `data` (hour 0 = data.first_minute), and the
        documents (plus prior weight) it rests on."""
        spec = self.spec
        prior: np.ndarray | float = spec.prior_rate
        if spec.prior == "global" and total is not None:
            cached = getattr(self, "_prior", None)
            if cached is not None and cached[0] is total:
                prior = cached[1]
            else:  # the same for every key of one fetch: computed once
                prior = _pooled(_hourly(total.docs), _hourly(total.neg), spec.baseline_hours,
                                spec.prior_rate, 1.0, spec.trim_p)[0]
                self._prior = (total, prior)
        hd, hn = _hourly(data.docs), _hourly(data.neg)
        if spec.same_hour:
            return _same_hour(hd, hn, spec.baseline_hours, spec.same_hour_days, prior,
                              spec.prior_docs, spec.same_hour_docs, spec.trim_p,
                              -(-max(self.windows) // 60))
        return _pooled(hd, hn, spec.baseline_hours, prior, spec.prior_docs, spec.trim_p)

    def conditions(self, data: KeyData, first_eval: int, n: int,
                   total: KeyData | None = None) -> Conditions:
        spec = self.spec
        idx = np.arange(first_eval, first_eval + n)
        rates, support = self.baseline_rates(data, total)
        cs_d, cs_n = prefix(data.docs), prefix(data.neg)

        def window(cs: np.ndarray, w: int) -> np.ndarray:
            return window_sums(cs, first_eval, n, w)

        if spec.same_hour:
            # each window's p0 = its documents' mean same-hour rate (expected negatives in
            # integer micro-units: exact cumsums, so live == history); a binomial with the
            # mean rate has the heavier upper tail than the true Poisson-binomial (Hoeffding)
            micro = np.round(rates * _MICRO).astype(np.int64)
            cs_e = prefix(data.docs * np.repeat(micro, 60)[:len(data.docs)])
            at_m = rates[idx // 60]
            eff = support[idx // 60]

            def p0_of(w: int, nd: np.ndarray) -> np.ndarray:
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(nd > 0, window(cs_e, w) / _MICRO / np.maximum(nd, 1), at_m)
        else:  # the rate of the hours before the longest window (it never feeds itself)
            p0_all = rates[(idx - max(self.windows) + 1) // 60]
            eff = support[(idx - max(self.windows) + 1) // 60]

            def p0_of(w: int, nd: np.ndarray) -> np.ndarray:
                return p0_all

        best_p = np.ones(n)
        best_a = np.full(n, self.alpha)
        best_k = np.zeros(n, dtype=np.int64)
        best_n = np.zeros(n, dtype=np.int64)
        best_w = np.full(n, spec.window_minutes, dtype=np.int64)
        head_d = window(cs_d, spec.window_minutes)
        head_p = best_p
        p0 = p0_of(spec.window_minutes, head_d)
        for w in self.windows:
            alpha = self.alpha_for(w)
            nd, nk = window(cs_d, w), window(cs_n, w)
            p0w = p0_of(w, nd)
            ok = (nk >= spec.min_negatives) & (nk >= spec.min_ratio * p0w * nd) & \
                (nk >= spec.min_share * nd) & (nd > 0)
            p = np.ones(n)
            if ok.any():
                p[ok] = _tail(nk[ok], nd[ok], p0w[ok], alpha,
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
        best_k[quiet] = window(cs_n, spec.window_minutes)[quiet]
        best_n[quiet] = head_d[quiet]
        if spec.same_hour:
            p0 = np.where(quiet, p0_of(spec.window_minutes, head_d), p0)
        best_w[quiet] = spec.window_minutes
        best_a[quiet] = self.alpha
        warm = self.seen(data.docs, first_eval, n, spec.warmup_minutes, cs_d)
        held = (best_p < best_a) & warm
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(best_n > 0, best_k / np.maximum(best_n, 1), np.nan)
        return Conditions(held=held, value=value, baseline=p0,
                          threshold=best_a, p_value=best_p, doc_count=best_n,
                          window=best_w)


def _tail(k: np.ndarray, n: np.ndarray, p: np.ndarray, alpha: float,
          support: np.ndarray | None = None) -> np.ndarray:
    """P(X >= k), X ~ Binomial(n, p): exact (scipy) where it may be below alpha; elsewhere the
    Chernoff bound exp(-n KL(k/n || p)), an upper bound, since the tail is at least that bound
    / (n + 1) and so cannot reach alpha there (saves most of the exact evaluations).
    With `support` (documents behind p): the beta-binomial tail, p ~ Beta(p s, (1 - p) s),
    for the baseline's own uncertainty - always >= the binomial tail, so computed only where
    that one is below alpha."""
    q = np.clip(k / n, 1e-12, 1 - 1e-12)
    pp = np.clip(p, 1e-12, 1 - 1e-12)
    kl = q * np.log(q / pp) + (1 - q) * np.log((1 - q) / (1 - pp))
    bound = np.minimum(np.exp(-n * kl), 1.0)
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
