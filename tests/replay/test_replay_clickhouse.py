"""Replay from the ClickHouse documents table: same aggregates, live untouched, resumable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from finsentry.errors import ReplayError
from finsentry.replay.runner import Replayer, ReplayPlan
from finsentry.store import ScoredSink, Store
from finsentry.store.runs import get_run
from tests.replay.helpers import T0, checksums, minute_aggregates, scored_stream, settings_for

END = T0 + timedelta(hours=2)


def _plan(run_id: str = "replay-1") -> ReplayPlan:
    return ReplayPlan(run_id=run_id, source="clickhouse", start=T0, end=END)


def test_replay_reproduces_aggregates_and_leaves_live_alone(store: Store) -> None:
    ScoredSink(store).write(scored_stream(150))
    before = checksums(store, "live")
    settings = settings_for(store, replay={"publish": False, "batch_size": 40})

    result = Replayer(settings, store, _plan(), progress=False).run()

    assert result.read == result.stored == 150
    assert checksums(store, "live") == before  # live rows, rollups and alerts unchanged
    for table in ("sentiment_minute", "sentiment_rollup"):
        assert minute_aggregates(store, "replay-1", table) == minute_aggregates(store, "live",
                                                                                table)
    copied = store.query("SELECT doc_id, source, text, metadata FROM scored_documents FINAL "
                         "WHERE run_id = %(r)s ORDER BY doc_id", {"r": "replay-1"})
    original = store.query("SELECT doc_id, source, text, metadata FROM scored_documents FINAL "
                           "WHERE run_id = 'live' ORDER BY doc_id")
    assert copied == original  # ids, sources and repeated texts preserved
    record = get_run(store, "replay-1")
    assert record is not None and record.status == "done" and record.docs == 150


def test_replay_resumes_from_its_position(store: Store) -> None:
    ScoredSink(store).write(scored_stream(90))
    settings = settings_for(store, replay={"publish": False, "batch_size": 20})
    calls = {"n": 0}

    def interrupt(_seconds: float) -> None:  # pacing sleeps once per batch: stop at the third
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Replayer(settings, store, ReplayPlan("replay-r", "clickhouse", T0, END, speed=1e6),
                 progress=False, sleep=interrupt, clock=lambda: 0.0).run()
    record = get_run(store, "replay-r")
    assert record is not None and record.status == "interrupted" and 0 < record.docs < 90

    result = Replayer(settings, store, ReplayPlan("replay-r", "clickhouse", T0, END, speed=1e6),
                      progress=False).run()
    assert result.resumed_after == (record.position_time, record.position_id)
    assert result.read == 90 - record.docs
    assert minute_aggregates(store, "replay-r") == minute_aggregates(store, "live")
    with pytest.raises(ReplayError, match="already complete"):
        Replayer(settings, store, ReplayPlan("replay-r", "clickhouse", T0, END),
                 progress=False).run()


def test_replay_refuses_the_live_run(store: Store) -> None:
    settings = settings_for(store, replay={"publish": False})
    with pytest.raises(ReplayError, match="live run"):
        Replayer(settings, store, _plan("live"), progress=False)
