"""The simpler rule kinds: spike (ElastAlert semantics), baseline, threshold, flatline.

All work on one key's dense per-minute arrays (see base.KeyData) over fixed horizons, so a minute
evaluates the same whether it is the last of a live cycle or inside a long history range.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, model_validator

from finsentry.alerts.base import (
    Conditions,
    GroupKey,
    KeyData,
    Metric,
    Rule,
    RuleSpec,
    rolling,
    window_metric,
)


def _window(data: KeyData, w: int, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(rolling(a, w)[idx] for a in (data.docs, data.neg, data.score, data.rows))


class SpikeSpec(RuleSpec):
    """ElastAlert's spike: current window vs the reference window just before it."""

    type: Literal["spike"] = "spike"
    metric: Literal["volume", "negative_count"] = "volume"
    spike_height: float = Field(2.0, gt=1, description="cur >= ref x height (up), <= ref / "
                                "height (down)")
    spike_type: Literal["up", "down", "both"] = "up"
    threshold_ref: int | None = Field(None, ge=0, description="Minimum reference count")
    threshold_cur: int | None = Field(None, ge=0, description="Minimum current count")
    alert_on_new_data: bool = Field(False, description="Fire on a key with an empty reference")


class SpikeRule(Rule):
    spec_class = SpikeSpec
    kind = "spike"
    spec: SpikeSpec

    def lookback_minutes(self) -> int:
        return max(self.spec.history_minutes, 2 * self.spec.window_minutes) + 1

    def conditions(self, data: KeyData, first_eval: int, n: int,
                   total: KeyData | None = None) -> Conditions:
        spec, w = self.spec, self.spec.window_minutes
        x = data.docs if spec.metric == "volume" else data.neg
        idx = np.arange(first_eval, first_eval + n)
        sums = rolling(x, w)
        cur, ref = sums[idx], sums[idx - w]
        h = spec.spike_height
        gate = (cur >= (spec.threshold_cur or 0)) & (ref >= (spec.threshold_ref or 0))
        up = (ref > 0) & (cur >= ref * h)
        down = (ref > 0) & (cur <= ref / h)
        spike = {"up": up, "down": down, "both": up | down}[spec.spike_type]
        # two timeframes of data for the key: it had documents at or before the reference start
        warm = self.seen(data.docs, first_eval, n, 2 * w - 1)
        held = gate & spike & warm
        if spec.alert_on_new_data and spec.spike_type != "down" and not spec.threshold_ref:
            held |= (ref == 0) & (cur > 0) & (cur >= (spec.threshold_cur or 0))
        threshold = np.where(cur >= ref, ref * h, ref / h)
        return Conditions(held=held, value=cur.astype(float), baseline=ref.astype(float),
                          threshold=threshold, p_value=np.full(n, np.nan),
                          doc_count=rolling(data.docs, w)[idx])


class BaselineSpec(RuleSpec):
    """The window's metric above its hourly mean + k standard deviations."""

    type: Literal["baseline"] = "baseline"
    k_sigma: float = Field(3.0, gt=0, description="Standard deviations above the mean")
    baseline_hours: int = Field(72, ge=2, le=60 * 24, description="Hourly samples looked back")
    min_samples: int = Field(12, ge=2, description="Hours with documents needed")
    min_std: float = Field(0.0, ge=0, description="Floor on the standard deviation")
    min_docs: int = Field(5, ge=0, description="Documents needed in the window")


class BaselineRule(Rule):
    spec_class = BaselineSpec
    kind = "baseline"
    spec: BaselineSpec

    def lookback_minutes(self) -> int:
        return max(self.spec.history_minutes,
                   self.spec.baseline_hours * 60 + self.spec.window_minutes + 60) + 1

    def conditions(self, data: KeyData, first_eval: int, n: int,
                   total: KeyData | None = None) -> Conditions:
        spec, w = self.spec, self.spec.window_minutes
        idx = np.arange(first_eval, first_eval + n)
        docs, neg, score, rows = _window(data, w, idx)
        value = window_metric(spec.metric, docs, neg, score, rows)
        hourly = [np.concatenate((a, np.zeros((-len(a)) % 60, dtype=a.dtype)))
                  .reshape(-1, 60).sum(axis=1) for a in (data.docs, data.neg, data.score,
                                                         data.rows)]
        sample = window_metric(spec.metric, *hourly)
        if spec.metric in ("volume", "negative_count"):
            sample = sample * (w / 60.0)  # hourly counts scaled to the window
        have = ~np.isnan(sample)
        sample = np.where(have, sample, 0.0)
        L = spec.baseline_hours
        pad = np.zeros(L)
        s1 = sliding_window_view(np.concatenate((pad, sample)), L).sum(axis=1)[:-1]
        s2 = sliding_window_view(np.concatenate((pad, sample * sample)), L).sum(axis=1)[:-1]
        cnt = rolling(np.concatenate(([0], have.astype(np.int64)))[:-1], L)
        hb = (idx - w + 1) // 60  # hours strictly before the window's first hour
        c = cnt[hb]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(c > 0, s1[hb] / np.maximum(c, 1), np.nan)
            var = np.where(c > 1, (s2[hb] - c * mean * mean) / np.maximum(c - 1, 1), np.nan)
        std = np.maximum(np.sqrt(np.maximum(var, 0.0)), spec.min_std)
        threshold = mean + spec.k_sigma * std
        warm = self.seen(data.docs, first_eval, n, spec.warmup_minutes)
        held = (c >= spec.min_samples) & (docs >= spec.min_docs) & (value > threshold) & warm
        return Conditions(held=np.nan_to_num(held).astype(bool), value=value, baseline=mean,
                          threshold=threshold, p_value=np.full(n, np.nan), doc_count=docs)


class ThresholdSpec(RuleSpec):
    """The window's metric above (or below) a fixed value."""

    type: Literal["threshold"] = "threshold"
    op: Literal["above", "below"] = "above"
    value: float = Field(description="Fire when the metric is above/below this (inclusive)")
    min_docs: int = Field(5, ge=0, description="Documents needed in the window")


class ThresholdRule(Rule):
    spec_class = ThresholdSpec
    kind = "threshold"
    spec: ThresholdSpec

    def conditions(self, data: KeyData, first_eval: int, n: int,
                   total: KeyData | None = None) -> Conditions:
        spec = self.spec
        idx = np.arange(first_eval, first_eval + n)
        docs, neg, score, rows = _window(data, spec.window_minutes, idx)
        value = window_metric(spec.metric, docs, neg, score, rows)
        with np.errstate(invalid="ignore"):
            hit = value >= spec.value if spec.op == "above" else value <= spec.value
        warm = self.seen(data.docs, first_eval, n, spec.warmup_minutes)
        held = hit & ~np.isnan(value) & (docs >= spec.min_docs) & warm
        return Conditions(held=held, value=value, baseline=np.full(n, np.nan),
                          threshold=np.full(n, spec.value), p_value=np.full(n, np.nan),
                          doc_count=docs)


class FlatlineSpec(RuleSpec):
    """Volume below a value: a source (or the whole feed) went silent."""

    type: Literal["flatline"] = "flatline"
    metric: Literal["volume"] = "volume"
    group_by: list[GroupKey] = Field(default_factory=list, description="[] = whole feed")
    threshold: int = Field(1, ge=1, description="Fire when the window has fewer documents")


class FlatlineRule(Rule):
    spec_class = FlatlineSpec
    kind = "flatline"
    spec: FlatlineSpec

    def conditions(self, data: KeyData, first_eval: int, n: int,
                   total: KeyData | None = None) -> Conditions:
        spec, w = self.spec, self.spec.window_minutes
        idx = np.arange(first_eval, first_eval + n)
        docs = rolling(data.docs, w)[idx]
        seen_before = self.seen(data.docs, first_eval, n, w)  # documents before the window
        warm = self.seen(data.docs, first_eval, n, max(w, spec.warmup_minutes))
        held = (docs < spec.threshold) & seen_before & warm
        return Conditions(held=held, value=docs.astype(float), baseline=np.full(n, np.nan),
                          threshold=np.full(n, float(spec.threshold)),
                          p_value=np.full(n, np.nan), doc_count=docs)


class NegativeSpikeSpec(RuleSpec):
    """The retired first rule type: loading it fails with the replacement to use."""

    model_config = RuleSpec.model_config | {"extra": "allow"}
    type: Literal["negative_spike"] = "negative_spike"

    @model_validator(mode="after")
    def _retired(self) -> NegativeSpikeSpec:
        raise ValueError(
            "rule type 'negative_spike' was replaced (it fired on chance: 3 negative of 5): "
            "use type = 'significance' (binomial test against the key's baseline; "
            "window_minutes, group_by and filter carry over; threshold, min_docs and "
            "baseline_factor become p_value/false_alarms_per_key_day, min_negatives and "
            "min_ratio), or type = 'threshold' with metric = 'negative_share'")


METRICS: tuple[Metric, ...] = ("negative_count", "negative_share", "mean_score", "volume")
