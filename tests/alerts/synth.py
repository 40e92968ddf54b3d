"""Synthetic per-minute data for rule tests: KeyData for the pure layer, rollup rows for the
store (inserted straight into sentiment_rollup, the table rules read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from finsentry.alerts.base import KeyData
from finsentry.alerts.evaluate import Fetched

T0 = datetime(2024, 5, 1, tzinfo=UTC)  # hour aligned
T0_MIN = int(T0.timestamp() // 60)


def key_data(docs: Any, neg: Any | None = None, first: int = T0_MIN) -> KeyData:
    d = np.asarray(docs, dtype=np.int64)
    n = np.zeros_like(d) if neg is None else np.asarray(neg, dtype=np.int64)
    return KeyData(d, n, np.zeros_like(d), d.copy(), first)


def fetched(series: dict[str, tuple[Any, Any]], first: int = T0_MIN,
            group: str = "ticker") -> Fetched:
    """{key: (docs, neg)} of equal length -> Fetched (total = their sum)."""
    data = [key_data(d, n, first) for d, n in series.values()]
    size = len(data[0].docs) if data else 0
    out = Fetched(first_minute=first, minutes=size,
                  keys=[{group: k} if group else {} for k in series], data=data)
    total = key_data(np.zeros(size), np.zeros(size), first)
    for d in data:
        total.docs += d.docs
        total.neg += d.neg
        total.rows += d.rows
    out.total = total
    return out


Incidents = tuple[tuple[int, int, float], ...] | list[tuple[int, int, float]]


def poisson_stream(rng: np.random.Generator, minutes: int, rate: float, share: float,
                   incidents: Incidents = ()) -> tuple[np.ndarray, np.ndarray]:
    """docs ~ Poisson(rate) per minute, negatives ~ Binomial(docs, share); incidents are
    (start, end, share) minute ranges with another share."""
    docs = rng.poisson(rate, minutes)
    p = np.full(minutes, share)
    for a, b, s in incidents:
        p[a:b] = s
    return docs, rng.binomial(docs, p)


def rollup_rows(run_id: str, ticker: str, docs: Any, neg: Any, *, start: datetime = T0,
                source: str = "wire", relevance: int = 10, novelty: int = 10,
                score: float = 0.0) -> list[dict[str, Any]]:
    """sentiment_rollup rows: per minute one negative row and one neutral row."""
    rows = []
    for i, (d, n) in enumerate(zip(docs, neg, strict=True)):
        minute = start + timedelta(minutes=i)
        for sentiment, count in (("negative", int(n)), ("neutral", int(d) - int(n))):
            if count:
                rows.append({"run_id": run_id, "minute": minute, "language": "en",
                             "topic": "markets", "ticker": ticker,
                             "relevance_tenths": relevance, "source": source,
                             "novelty_tenths": novelty, "sentiment": sentiment, "docs": count,
                             "docs_once": count, "score_sum": score * count,
                             "p_negative_sum": 0.9 * count if sentiment == "negative" else 0.0})
    return rows
