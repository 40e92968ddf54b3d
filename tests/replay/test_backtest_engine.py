"""A backtest fires exactly what the live alert engine fired on the same data: the demo's
sample stream (its injected negative burst), scored by the shipped classifier."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from finsentry.config import AlertSettings, ClickHouseSettings, ModelSettings
from finsentry.models import load_classifier
from finsentry.replay.backtest import run_backtest
from finsentry.replay.evaluator import engine_evaluator
from finsentry.store import ScoredSink, Store, migrate, open_store
from finsentry.streams.processor import BatchScorer
from finsentry.streams.sample import SampleStream, generate
from tests.replay.helpers import checksums

HERE = Path(__file__).parent
RULES = HERE / "rules_strict.toml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, SampleStream]]:
    """The demo's sample stream, scored by the shipped classifier into `live` (chdb)."""
    path = tmp_path_factory.mktemp("demo") / "chdb"
    sample = generate(240, seed=7)
    with open_store(ClickHouseSettings(chdb_path=path)) as store:
        migrate(store)
        scorer = BatchScorer(load_classifier(ModelSettings()), ScoredSink(store), "live", "demo")
        for i in range(0, len(sample.documents), 64):
            scorer.score_and_store(sample.documents[i:i + 64])
        yield store, sample


def _live_engine_alerts(store: Store, start: datetime, end: datetime) -> set[tuple[str, str,
                                                                                   datetime]]:
    """Run the live engine's cycle minute by minute (log notifier), as `alerts run` would."""
    from finsentry.alerts.engine import AlertEngine
    from finsentry.alerts.notify import LogNotifier

    rules = tomllib.loads(RULES.read_text(encoding="utf-8"))["rules"]
    settings = AlertSettings.model_validate({"rules": rules, "notifiers": ["log"]})
    engine = AlertEngine(settings, store, "live", {"log": LogNotifier(settings)})
    t = start
    while t < end:
        engine.cycle(t)
        t += timedelta(minutes=1)
    rows = store.query("SELECT rule, ticker, window_end FROM alerts FINAL WHERE run_id = 'live'")
    return {(str(r["rule"]), str(r["ticker"]), r["window_end"]) for r in rows}


def test_backtest_equals_live_engine_on_demo_burst(demo: tuple[Store, SampleStream]) -> None:
    store, sample = demo
    start = sample.documents[0].published_at.replace(second=0, microsecond=0)
    end = sample.documents[-1].published_at.replace(second=0, microsecond=0) + \
        timedelta(minutes=30)
    live = _live_engine_alerts(store, start, end)
    assert live, "the live engine fired nothing on the demo burst"
    assert {ticker for _, ticker, _ in live} == {sample.burst_ticker}
    before = checksums(store, "live")

    result = run_backtest(store, engine_evaluator(), [RULES], "live", start, end)
    fired = {(a.rule, a.key, a.at) for a in result.sides[0].outcomes[0].alerts}
    assert fired == live
    assert checksums(store, "live") == before  # the backtest wrote nothing
