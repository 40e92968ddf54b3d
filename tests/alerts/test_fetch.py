"""alerts.evaluate.fetch on the real stores (chdb and 18.16): the columnar read sums every
stored rollup row (several per minute, unmerged parts) into the same dense per-key minutes as
a plain per-row reference computed here in Python."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from finsentry.alerts.base import SCORE_SCALE, epoch_minute
from finsentry.alerts.evaluate import build_rule, fetch
from finsentry.alerts.registry import RuleConfig
from finsentry.store import Store
from tests.alerts.synth import T0

RULES = TypeAdapter(RuleConfig)
MINUTES = 180


def _rows() -> list[dict[str, Any]]:
    """Random rollup rows over several tickers/topics/sources/sentiments; no ticker for some."""
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(900):
        sentiment = str(rng.choice(["negative", "neutral", "positive"]))
        docs = int(rng.integers(1, 4))
        rows.append({"run_id": "live", "minute": T0 + timedelta(minutes=int(rng.integers(
            0, MINUTES))), "language": "en", "topic": str(rng.choice(["markets", "tech"])),
            "ticker": str(rng.choice(["AAPL", "MSFT", "NVDA", ""])),
            "relevance_tenths": int(rng.integers(0, 11)), "source": str(rng.choice(["a", "b"])),
            "novelty_tenths": int(rng.integers(0, 11)), "sentiment": sentiment,
            "docs": docs, "docs_once": int(rng.integers(0, docs + 1)),
            "score_sum": round(float(rng.uniform(-1, 1)) * docs, 6),
            "p_negative_sum": 0.0})
    return rows


def _reference(rows: list[dict[str, Any]], spec: dict[str, Any], lo: int,
               minutes: int) -> dict[tuple[str, ...], dict[str, np.ndarray]]:
    keys = spec.get("group_by", ["ticker"])
    flt = spec.get("filter", {})
    measure = "docs" if "ticker" in keys or flt.get("tickers") else "docs_once"
    out: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
    for r in rows:
        if any(r[k] == "" for k in keys) or r["relevance_tenths"] < flt.get(
                "min_relevance", 0) * 10 - 1e-9 or (flt.get("tickers") and r["ticker"]
                                                    not in flt["tickers"]):
            continue
        key = tuple(r[k] for k in keys)
        arrays = out.setdefault(key, {n: np.zeros(minutes) for n in ("docs", "neg", "s", "r")})
        i = epoch_minute(r["minute"]) - lo
        arrays["docs"][i] += r[measure]
        arrays["neg"][i] += r[measure] if r["sentiment"] == "negative" else 0
        arrays["s"][i] += r["score_sum"]
        arrays["r"][i] += r["docs"]
    return out


@pytest.mark.parametrize("spec", [
    {"group_by": ["ticker"]},
    {"group_by": ["ticker", "topic"], "metric": "mean_score"},
    {"group_by": [], "metric": "mean_score"},
    {"group_by": ["source"], "filter": {"min_relevance": 0.5, "tickers": ["AAPL", "NVDA"]}},
])
def test_fetch_sums_every_row(store: Store, spec: dict[str, Any]) -> None:
    rows = _rows()
    store.insert("sentiment_rollup", rows[:450])
    store.insert("sentiment_rollup", rows[450:])  # a second part: rows not merged yet
    rule = build_rule(RULES.validate_python({"type": "threshold", "name": "r", "value": 1,
                                             "history_minutes": 60, **spec}))
    first = epoch_minute(T0) + 120
    got = fetch(store, rule, "live", first, epoch_minute(T0) + MINUTES)
    want = _reference(rows, spec, got.first_minute, got.minutes)
    keys = spec["group_by"]
    assert [tuple(k[c] for c in keys) for k in got.keys] == sorted(want)
    for key, data in zip(got.keys, got.key_data(), strict=True):
        ref = want[tuple(key[c] for c in keys)]
        assert data.first_minute == got.first_minute and len(data.docs) == got.minutes
        assert np.array_equal(data.docs, ref["docs"]) and np.array_equal(data.neg, ref["neg"])
        if spec.get("metric") == "mean_score":
            assert np.array_equal(data.score, np.round(ref["s"] * SCORE_SCALE))
            assert np.array_equal(data.rows, ref["r"])
        else:
            assert not data.score.any() and np.array_equal(data.rows, data.docs)
        assert not data.docs.flags.writeable  # shared views: rules must not modify them
    assert (got.total is not None) == rule.needs_global()


def test_fetch_of_nothing(store: Store) -> None:
    rule = build_rule(RULES.validate_python({"type": "threshold", "name": "r", "value": 1,
                                             "group_by": []}))
    got = fetch(store, rule, "live", epoch_minute(T0), epoch_minute(T0) + 60)
    assert got.keys == [] and got.data == []
