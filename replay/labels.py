"""Labelled events and how well a rule's alerts detect them.

A labels CSV has one event per row: `key,start,end` (key as the alert engine names a series,
"ticker=AAPL", or a one-column key's bare value, "AAPL"), (ISO times, UTC unless an offset is given)
and optionally `rule` (the event only counts for that rule; empty = every rule) and `label`
(a description). An event is detected by an alert of the same key fired between its start and
its end + grace; such an alert is a true positive. Per rule:

- recall = detected events / events (None without events),
- precision = true-positive alerts / alerts (None without alerts),
- delay = first detecting alert's time - event start (median and mean over detected events).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from finsentry.errors import ReplayError
from finsentry.replay.evaluator import Fired, key_matches


@dataclass(frozen=True)
class Event:
    key: str
    start: datetime
    end: datetime
    rule: str = ""
    label: str = ""

    def applies_to(self, rule: str) -> bool:
        return not self.rule or self.rule == rule


def parse_time(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ReplayError(f"{where}: not an ISO time: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_labels(path: Path) -> list[Event]:
    """Events from a labels CSV; errors name the file, line and column."""
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"labels file {path}: {exc.strerror}") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = {"key", "start", "end"} - set(reader.fieldnames or [])
        if missing:
            raise ReplayError(f"labels file {path}: missing columns {sorted(missing)} "
                              "(need key,start,end[,rule][,label])")
        events = []
        for row in reader:
            where = f"labels file {path}: line {reader.line_num}"
            if not (row.get("key") or "").strip():
                raise ReplayError(f"{where}: empty key")
            start, end = parse_time(row["start"], where), parse_time(row["end"], where)
            if end < start:
                raise ReplayError(f"{where}: end {end} is before start {start}")
            events.append(Event(row["key"].strip(), start, end, (row.get("rule") or "").strip(),
                                (row.get("label") or "").strip()))
    return events


@dataclass
class EventResult:
    event: Event
    detected_at: datetime | None

    @property
    def delay_minutes(self) -> float | None:
        if self.detected_at is None:
            return None
        return (self.detected_at - self.event.start).total_seconds() / 60


@dataclass
class Score:
    """Detection quality of one rule's alerts against the labelled events."""

    rule: str
    events: int
    detected: int
    alerts: int
    true_alerts: int
    per_event: list[EventResult] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.detected / self.events if self.events else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None

    @property
    def delays(self) -> list[float]:
        return [d for r in self.per_event if (d := r.delay_minutes) is not None]

    @property
    def median_delay_minutes(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    @property
    def mean_delay_minutes(self) -> float | None:
        return statistics.fmean(self.delays) if self.delays else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "events": self.events, "detected": self.detected,
            "alerts": self.alerts, "true_alerts": self.true_alerts, "recall": self.recall,
            "precision": self.precision, "median_delay_minutes": self.median_delay_minutes,
            "mean_delay_minutes": self.mean_delay_minutes,
            "per_event": [{"key": r.event.key, "start": r.event.start.isoformat(),
                           "end": r.event.end.isoformat(), "label": r.event.label,
                           "detected_at": r.detected_at.isoformat() if r.detected_at else None,
                           "delay_minutes": r.delay_minutes} for r in self.per_event],
        }


def score(rule: str, alerts: Sequence[Fired], events: Sequence[Event],
          grace: timedelta) -> Score:
    """Recall, precision and detection delay of `alerts` against the events for `rule`."""
    mine = [e for e in events if e.applies_to(rule)]
    fired = [a for a in alerts if a.rule == rule]

    def hits(a: Fired, e: Event) -> bool:
        return key_matches(a.key, e.key) and e.start <= a.at <= e.end + grace

    per_event = []
    for e in mine:
        times = [a.at for a in fired if hits(a, e)]
        per_event.append(EventResult(e, min(times) if times else None))
    true_alerts = sum(1 for a in fired if any(hits(a, e) for e in mine))
    return Score(rule=rule, events=len(mine),
                 detected=sum(1 for r in per_event if r.detected_at is not None),
                 alerts=len(fired), true_alerts=true_alerts, per_event=per_event)
