"""The rule seam: a rule spec (config entry), a Rule that turns ClickHouse aggregates into Matches.

Modelled on ElastAlert2: rule -> matches -> notifiers, with realert suppression done by the
engine. Nothing here imports finsentry.config or the store at import time: finsentry.config
builds its `rules` union from the registry, so this module must stay import-light.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from finsentry.store import Store

ScopeKey = Literal["ticker", "topic", "source"]
SCOPE_KEYS: tuple[ScopeKey, ...] = ("ticker", "topic", "source")
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class RuleSpec(BaseModel):
    """Fields every rule type shares; subclasses add `type: Literal[...]` and their own knobs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique rule name (in alert ids, subjects)")
    enabled: bool = True
    severity: Literal["info", "warning", "critical"] = "warning"
    realert_minutes: float = Field(60.0, ge=0, description="No repeat notification for the same "
                                   "rule+scope within this many minutes (0 = never suppress)")
    notifiers: list[str] | None = Field(None,
                                        description="Notifier names; unset = alerts.notifiers")


@dataclass(frozen=True)
class Example:
    """One stored document behind a match (untrusted text: escape before display)."""

    title: str
    url: str
    source: str
    published_at: datetime
    score: float


@dataclass
class Match:
    """One rule firing for one scope over one window."""

    rule: str
    scope: dict[str, str]  # e.g. {"ticker": "AAPL"}; empty values never occur
    window_start: datetime
    window_end: datetime
    metric: str
    value: float
    threshold: float
    baseline: float
    doc_count: int
    severity: str = "warning"
    examples: list[Example] = field(default_factory=list)

    @property
    def alert_id(self) -> str:
        """Deterministic: the same rule, scope and window always give the same id."""
        scope = "&".join(f"{k}={self.scope[k]}" for k in sorted(self.scope))
        basis = f"{self.rule}|{scope}|{self.window_start.isoformat()}|{self.window_end.isoformat()}"
        return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]

    @property
    def scope_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.scope.items()) or "all"

    @property
    def summary(self) -> str:
        return (f"{self.rule} [{self.scope_text}]: {self.metric} {self.value:.2f} "
                f"(threshold {self.threshold:.2f}, baseline {self.baseline:.2f}) over "
                f"{self.doc_count} documents, {self.window_start:%Y-%m-%d %H:%M}-"
                f"{self.window_end:%H:%M} UTC")

    def to_row(self, run_id: str, version: int) -> dict[str, Any]:
        """The alerts-table row (store/migrations.py ALERTS_DDL), not yet notified."""
        return {
            "run_id": run_id, "alert_id": self.alert_id, "rule": self.rule,
            "topic": self.scope.get("topic", ""), "ticker": self.scope.get("ticker", ""),
            "source": self.scope.get("source", ""),
            "window_start": self.window_start, "window_end": self.window_end,
            "fired_at": datetime.now(UTC), "value": float(self.value),
            "threshold": float(self.threshold), "baseline": float(self.baseline),
            "doc_count": int(self.doc_count), "severity": self.severity,
            "message": f"{self.metric}|{self.summary}", "notified": 0,
            "notify_status": "{}", "version": version,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Match:
        """Rebuild a stored alert (for retrying its notification after a restart)."""
        metric, _, _summary = str(row["message"]).partition("|")
        scope: dict[str, str] = {k: str(row[k]) for k in SCOPE_KEYS if row.get(k)}
        return cls(rule=str(row["rule"]), scope=scope, window_start=_utc(row["window_start"]),
                   window_end=_utc(row["window_end"]), metric=metric or "value",
                   value=float(row["value"]), threshold=float(row["threshold"]),
                   baseline=float(row["baseline"]), doc_count=int(row["doc_count"]),
                   severity=str(row["severity"]))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window_end_for(as_of: datetime) -> datetime:
    """`as_of` rounded UP to the minute: windows align to the minute buckets the aggregate has,
    so every cycle within one minute sees the same window (and the same alert ids)."""
    as_of = _utc(as_of)
    floor = as_of.replace(second=0, microsecond=0)
    return floor if floor == as_of else floor + timedelta(minutes=1)


_EXAMPLES_SQL = """
SELECT title, url, source, published_at, score
FROM scored_documents FINAL
WHERE run_id = %(run_id)s
  AND published_at >= toDateTime(%(window_start)s, 'UTC')
  AND published_at < toDateTime(%(window_end)s, 'UTC')
  AND sentiment = %(negative)s{scope}
ORDER BY score ASC, published_at DESC, doc_id ASC
LIMIT %(limit)s
"""

# How each scope column is matched on scored_documents (sentiment_minute unnests `tickers`).
_DOC_FILTERS: dict[str, str] = {
    "ticker": " AND has(tickers, %(ticker)s)",
    "topic": " AND topic = %(topic)s",
    "source": " AND source = %(source)s",
}


def fetch_examples(store: Store, run_id: str, match: Match, limit: int) -> list[Example]:
    """The most negative stored headlines behind a match (scope and window as the match's)."""
    if limit <= 0:
        return []
    params: dict[str, Any] = {"run_id": run_id, "negative": "negative", "limit": int(limit),
                              "window_start": match.window_start, "window_end": match.window_end,
                              **match.scope}
    scope_sql = "".join(_DOC_FILTERS[k] for k in match.scope if k in _DOC_FILTERS)
    rows = store.query(_EXAMPLES_SQL.format(scope=scope_sql), params)
    return [Example(title=str(r["title"]), url=str(r["url"]), source=str(r["source"]),
                    published_at=r["published_at"], score=float(r["score"])) for r in rows]


class Rule(ABC):
    """A configured rule; `evaluate` reads ClickHouse only and has no side effects."""

    spec_class: ClassVar[type[RuleSpec]]

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def evaluate(self, store: Store, run_id: str, as_of: datetime,
                 examples: int = 5) -> list[Match]:
        """Matches for the window ending at `as_of`, with up to `examples` headlines each."""
