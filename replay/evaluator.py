"""The seam between the backtest and the alert engine's range evaluation.

A backtest needs, per rule: every alert live evaluation would have fired over [start, end)
(event time), and the rule's metric per key and minute for the report. `RangeEvaluator` is that
contract; `engine_evaluator()` returns the implementation backed by the alert engine (the same
code the live loop runs). Rules come from the alert engine's own rule files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from finsentry.store import Store


@dataclass(frozen=True)
class Fired:
    """One alert a rule would have fired, at the event time it fired."""

    rule: str
    key: str  # the alert engine's group key, e.g. "ticker=AAPL" or "source=wire,ticker=AAPL"
    at: datetime
    value: float = 0.0
    baseline: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class Point:
    key: str
    minute: datetime
    value: float
    baseline: float | None = None


class RangeEvaluator(Protocol):
    """What the backtest needs of the alert engine."""

    def load_rules(self, paths: Sequence[Path]) -> list[Any]:
        """Rules from rule files (validated, file and key named on error)."""

    def rule_name(self, rule: Any) -> str: ...

    def metric_name(self, rule: Any) -> str: ...

    def fired(self, store: Store, run_id: str, rule: Any, start: datetime,
              end: datetime) -> list[Fired]:
        """Every alert live evaluation would have fired over [start, end), oldest first."""

    def series(self, store: Store, run_id: str, rule: Any, start: datetime, end: datetime,
               keys: Sequence[str]) -> list[Point]:
        """The rule's metric per key and minute over [start, end) for the given keys."""


def key_matches(alert_key: str, label_key: str) -> bool:
    """A labelled key names an alert series as the engine does ("ticker=AAPL") or, for a
    one-column key, by its bare value ("AAPL")."""
    if alert_key == label_key:
        return True
    column, sep, value = alert_key.partition("=")
    return bool(sep) and "," not in alert_key and value == label_key


def engine_evaluator() -> RangeEvaluator:
    from finsentry.replay.engine_adapter import EngineEvaluator

    return EngineEvaluator()
