"""The rule seam: the spec every rule shares, the per-key data a rule sees, and AlertEvent.

A rule kind (alerts/kinds.py) turns dense per-minute arrays of ONE key into per-minute
`Conditions` (held / value / baseline / threshold / p-value) over the evaluated minutes; the
lifecycle (alerts/lifecycle.py) turns conditions into firing/resolved events with `for`, realert
and state carried across calls; alerts/evaluate.py fetches the data in one query per rule.

Minute convention: the evaluation "at minute m" (UTC minute start) sees the documents published in
minutes m-W+1 .. m (W = window_minutes) and runs once minute m is closed. `event_time` = m.
Nothing here imports finsentry.config or the store at import time (config builds its rule union
from the registry).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from finsentry.alerts.evaluate import Fetched

GroupKey = Literal["ticker", "topic", "source", "language"]
GROUP_KEYS: tuple[GroupKey, ...] = ("ticker", "topic", "source", "language")
Metric = Literal["negative_count", "negative_share", "mean_score", "volume"]
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
SCORE_SCALE = 1_000_000  # score sums as integer micro-units: exact, start-independent cumsums


class RuleFilter(BaseModel):
    """Which documents a rule counts (empty list = no restriction)."""

    model_config = ConfigDict(extra="forbid")

    topics: list[str] = Field(default_factory=list, description="Only these topics")
    tickers: list[str] = Field(default_factory=list, description="Only these tickers")
    sources: list[str] = Field(default_factory=list, description="Only these sources")
    languages: list[str] = Field(default_factory=list, description="Only these languages")
    min_relevance: float = Field(0.0, ge=0, le=1, description="Minimum ticker relevance; "
                                 "floored to a tenth (0.75 counts relevance >= 0.7)")
    min_novelty: float = Field(0.0, ge=0, le=1, description="Minimum novelty (syndicated "
                               "copies have ~0); floored to a tenth like min_relevance")


class RuleSpec(BaseModel):
    """Fields every rule kind shares; kinds add `type: Literal[...]` and their own knobs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique rule name (alert ids, subjects)")
    enabled: bool = True
    severity: Literal["info", "warning", "critical"] = "warning"
    metric: Metric = "negative_share"
    filter: RuleFilter = Field(default_factory=RuleFilter)
    group_by: list[GroupKey] = Field(default_factory=lambda: list[GroupKey](["ticker"]),
                                     description="One alert series per key; [] = whole feed")
    window_minutes: int = Field(15, ge=1, le=24 * 60, description="Evaluation window")
    for_evaluations: int = Field(1, ge=1, le=1440, alias="for",
                                 description="Condition must hold this many consecutive minutes")
    realert_minutes: float = Field(60.0, ge=0, description="A new episode for the same key "
                                   "within this many minutes of the last alert is suppressed")
    realert_exponential: bool = Field(False, description="Double realert after each suppressed "
                                      "episode (up to realert_max_minutes)")
    realert_max_minutes: float = Field(24 * 60.0, ge=0)
    keep_firing_minutes: int = Field(0, ge=0, le=24 * 60, description="An episode ends only "
                                     "after the condition failed this many minutes in a row")
    history_minutes: int = Field(24 * 60, ge=1, le=60 * 24 * 60, description="How far back a "
                                 "key counts as seen (warm-up, new keys, flatline)")
    warmup_minutes: int = Field(0, ge=0, description="A key fires only if it had documents at "
                                "least this long before (within history_minutes)")
    notify_resolved: bool = Field(False, description="Also notify when an alert resolves")
    notifiers: list[str] | None = Field(None, description="Notifier names; unset = "
                                        "alerts.notifiers")
    mail_to: list[str] | None = Field(None, description="Recipients; unset = alerts.mail_to")

    @field_validator("group_by")
    @classmethod
    def _unique(cls, value: list[GroupKey]) -> list[GroupKey]:
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate group_by columns: {value}")
        return value


@dataclass
class KeyData:
    """Dense per-minute arrays of one key over the fetched minutes (index 0 = `first_minute`).

    `docs` are documents (once per ticker row when grouped/filtered by ticker, else once),
    `neg` negative ones, `score` the score sum in SCORE_SCALE units over `rows` ticker rows.
    """

    docs: np.ndarray
    neg: np.ndarray
    score: np.ndarray
    rows: np.ndarray
    first_minute: int  # epoch minutes, hour-aligned


@dataclass
class KeyBlock:
    """Every key of one fetch as prefix sums along its minutes (keys x minutes + 1, leading 0):
    documents and negatives, int32 when every sum of the fetch fits, else int64 (exact)."""

    cs_docs: np.ndarray
    cs_neg: np.ndarray


@dataclass
class Conditions:
    """Per evaluated minute of one key (arrays of equal length)."""

    held: np.ndarray
    value: np.ndarray
    baseline: np.ndarray
    threshold: np.ndarray
    p_value: np.ndarray
    doc_count: np.ndarray
    window: np.ndarray | None = None  # window length behind the value, when it varies

    @classmethod
    def empty(cls, n: int) -> Conditions:
        nan = np.full(n, np.nan)
        return cls(np.zeros(n, dtype=bool), nan, nan.copy(), nan.copy(), nan.copy(),
                   np.zeros(n, dtype=np.int64))

    def take(self, positions: np.ndarray) -> Conditions:
        """The conditions at `positions` only (what events report)."""
        return Conditions(self.held[positions], self.value[positions],
                          self.baseline[positions], self.threshold[positions],
                          self.p_value[positions], self.doc_count[positions],
                          None if self.window is None else self.window[positions])


class Batch:
    """The conditions of every key of one fetch, for the range evaluator: `held(i)` is key i's
    condition per evaluated minute; `ask(i, positions)` wants its Conditions at a few of them
    (the minutes with a transition), `figures()` answers every ask in order. This default runs
    `Rule.conditions` key by key; a kind can decide `held` for all keys at once and compute
    the figures in one go."""

    def __init__(self, rule: Rule, fetched: Fetched, first_eval: int, n: int) -> None:
        self.rule, self.first_eval, self.n = rule, first_eval, n
        self.data, self.total = fetched.key_data(), fetched.total
        self._last: tuple[int, Conditions] | None = None
        self._answers: list[Conditions] = []

    def _conditions(self, i: int) -> Conditions:
        if self._last is None or self._last[0] != i:
            self._last = (i, self.rule.conditions(self.data[i], self.first_eval, self.n,
                                                  self.total))
        return self._last[1]

    def held(self, i: int) -> np.ndarray:
        return self._conditions(i).held

    def ask(self, i: int, positions: np.ndarray) -> None:
        self._answers.append(self._conditions(i).take(positions))

    def figures(self) -> list[Conditions]:
        return self._answers


def rolling(x: np.ndarray, w: int) -> np.ndarray:
    """Sum over the window ending at each index (i-w, i]; exact for integer arrays."""
    cs = np.concatenate(([0], np.cumsum(x, dtype=np.int64)))
    lo = np.maximum(np.arange(1, len(x) + 1) - w, 0)
    return cs[1:] - cs[lo]


def prefix(x: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0: sum of x[a:b] = p[b] - p[a]."""
    out = np.empty(len(x) + 1, dtype=np.int64)
    out[0] = 0
    np.cumsum(x, out=out[1:])
    return out


def window_sums(p: np.ndarray, first: int, n: int, w: int) -> np.ndarray:
    """Sums over the w minutes ending at each of first..first+n-1, from prefix sums `p`
    (slices, no gathers, when the data reaches back far enough - it does for fetched data)."""
    lo = first + 1 - w
    if lo >= 0:
        return p[first + 1:first + n + 1] - p[lo:lo + n]
    idx = np.arange(first, first + n)
    return p[idx + 1] - p[np.maximum(idx + 1 - w, 0)]


def window_metric(metric: Metric, docs: np.ndarray, neg: np.ndarray, score: np.ndarray,
                  rows: np.ndarray) -> np.ndarray:
    """The metric from (window) sums; share/mean are NaN where there are no documents."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "negative_count":
            return neg.astype(float)
        if metric == "volume":
            return docs.astype(float)
        if metric == "negative_share":
            return np.where(docs > 0, neg / np.maximum(docs, 1), np.nan)
        return np.where(rows > 0, score / SCORE_SCALE / np.maximum(rows, 1), np.nan)


def key_text(key: dict[str, str]) -> str:
    """`ticker=AAPL` / `ticker=AAPL,topic=markets`; `all` for an ungrouped rule."""
    return ",".join(f"{k}={v}" for k, v in key.items()) or "all"


def alert_id(run_id: str, rule: str, group_key: str, fired_minute: int) -> str:
    """Deterministic: a re-evaluation of the same data gives the same id (idempotent writes)."""
    basis = f"{run_id}|{rule}|{group_key}|{fired_minute}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def minute_dt(epoch_minute: int) -> datetime:
    return datetime.fromtimestamp(epoch_minute * 60, UTC)


def epoch_minute(value: datetime) -> int:
    """A datetime floored to its minute, as minutes since the epoch (naive = UTC)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return int(value.timestamp() // 60)


@dataclass
class AlertEvent:
    """One lifecycle transition of one key: `firing` (a new alert) or `resolved`."""

    rule: str
    alert_id: str
    group_key: str
    key: dict[str, str]
    state: Literal["firing", "resolved"]
    event_time: datetime  # the minute it fired / resolved (event time)
    fired_time: datetime  # the minute the alert fired (== event_time when firing)
    metric: str
    value: float
    baseline: float
    threshold: float
    p_value: float
    doc_count: int
    window_minutes: int
    severity: str
    kind: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_at(self) -> datetime | None:
        return self.event_time if self.state == "resolved" else None


class Rule(ABC):
    """A configured rule; `conditions` is pure numpy over one key's arrays."""

    spec_class: ClassVar[type[RuleSpec]]
    kind: ClassVar[str]

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def lookback_minutes(self) -> int:
        """Minutes of data needed before the first evaluated minute."""
        return max(self.spec.history_minutes, self.spec.window_minutes) + 1

    def needs_global(self) -> bool:
        """Whether `conditions` wants the all-keys series (a prior)."""
        return False

    def batch(self, fetched: Fetched, first_eval: int, n: int) -> Batch:
        """Conditions of all keys of one fetch (alerts/evaluate.py) over n minutes from index
        first_eval."""
        return Batch(self, fetched, first_eval, n)

    @abstractmethod
    def conditions(self, data: KeyData, first_eval: int, n: int,
                   total: KeyData | None = None) -> Conditions:
        """Conditions for the n minutes starting at index `first_eval` of `data`."""

    def seen(self, docs: np.ndarray, first_eval: int, n: int, gap: int,
             p: np.ndarray | None = None) -> np.ndarray:
        """Whether the key had documents in [m - history + 1, m - gap] for each evaluated m
        (`p` = prefix(docs) when the caller has it)."""
        p = prefix(docs) if p is None else p
        span = max(self.spec.history_minutes - gap, 1)
        start = first_eval - gap
        if start >= 0:
            return window_sums(p, start, n, span) > 0
        out = np.zeros(n, dtype=bool)
        k = -start  # evaluated minutes whose m - gap falls before the data
        if k < n:
            out[k:] = window_sums(p, 0, n - k, span) > 0
        return out
