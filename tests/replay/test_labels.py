"""Recall, precision and detection delay on a small case checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from finsentry.errors import ReplayError
from finsentry.replay.evaluator import Fired
from finsentry.replay.labels import read_labels, score

T = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


LABELS = """key,start,end,rule,label
AAPL,2024-03-04T10:00:00,2024-03-04T10:30:00,,profit warning
BAC,2024-03-04T11:00:00+00:00,2024-03-04T11:20:00Z,,loss disclosure
MSFT,2024-03-04T12:00:00,2024-03-04T12:10:00,,quiet incident
TSLA,2024-03-04T10:00:00,2024-03-04T10:10:00,other-rule,not for neg
"""


def test_recall_precision_delay_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(LABELS, encoding="utf-8")
    events = read_labels(path)
    assert len(events) == 4 and events[1].end == at(80)
    alerts = [
        Fired("neg", "AAPL", at(12)),   # detects AAPL, delay 12
        Fired("neg", "AAPL", at(25)),   # also inside AAPL: true, but not the first
        Fired("neg", "BAC", at(105)),   # BAC ends at 80, + 30 grace = 110: detects, delay 45
        Fired("neg", "BAC", at(200)),   # too late: false
        Fired("neg", "AAPL", at(-5)),   # before the event: false
        Fired("neg", "TSLA", at(5)),    # TSLA's event is for another rule: false here
        Fired("other", "MSFT", at(121)),  # other rule: not counted for "neg"
    ]
    s = score("neg", alerts, events, timedelta(minutes=30))
    # events for "neg": AAPL, BAC, MSFT (TSLA belongs to other-rule); MSFT missed
    assert (s.events, s.detected) == (3, 2)
    assert s.recall == pytest.approx(2 / 3)
    # alerts of "neg": 6; true: the two AAPL inside, the first BAC
    assert (s.alerts, s.true_alerts) == (6, 3)
    assert s.precision == pytest.approx(0.5)
    assert s.delays == [12.0, 45.0]
    assert s.median_delay_minutes == pytest.approx(28.5)
    assert s.to_dict()["per_event"][2]["detected_at"] is None

    none = score("quiet", [], events, timedelta(minutes=30))
    assert none.recall == 0 and none.precision is None and none.median_delay_minutes is None


def test_bad_labels_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("key,start,end\nAAPL,yesterday,2024-03-04T10:00:00\n", encoding="utf-8")
    with pytest.raises(ReplayError, match=r"bad.csv: line 2: not an ISO time: 'yesterday'"):
        read_labels(path)
    path.write_text("ticker,start\n", encoding="utf-8")
    with pytest.raises(ReplayError, match="missing columns"):
        read_labels(path)
