"""A backtest fires exactly what the live alert engine fired on the same data: the demo's
sample stream (its injected negative burst) scored by the shipped classifier, the default rules
of deploy/finsentry.toml (warm-up capped as the demo does), live cycles minute by minute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from finsentry.alerts.base import minute_dt
from finsentry.alerts.demo import DEMO_WARMUP_MINUTES
from finsentry.alerts.rulefiles import load_rules
from finsentry.config import AlertSettings, ClickHouseSettings, ModelSettings, load_settings
from finsentry.models import load_classifier
from finsentry.replay.backtest import run_backtest
from finsentry.replay.evaluator import engine_evaluator
from finsentry.store import ScoredSink, Store, migrate, open_store
from finsentry.streams.processor import BatchScorer
from finsentry.streams.sample import SampleStream, generate
from tests.replay.helpers import checksums

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, SampleStream]]:
    """The demo's sample stream, scored by the shipped classifier into `live` (chdb)."""
    path = tmp_path_factory.mktemp("demo") / "chdb"
    sample = generate(600, seed=7)
    with open_store(ClickHouseSettings(chdb_path=path)) as store:
        migrate(store)
        scorer = BatchScorer(load_classifier(ModelSettings()), ScoredSink(store), "live", "demo")
        for i in range(0, len(sample.documents), 64):
            scorer.score_and_store(sample.documents[i:i + 64])
        yield store, sample


def _demo_rules() -> list[dict[str, Any]]:
    settings = load_settings(ROOT / "deploy" / "finsentry.toml")
    return [s.model_copy(update={"warmup_minutes": min(s.warmup_minutes, DEMO_WARMUP_MINUTES)})
            .model_dump(mode="json", by_alias=True, exclude_none=True)
            for s in load_rules(settings.alerts) if s.enabled]


def _live_engine(store: Store, rules: list[dict[str, Any]], start: datetime,
                 end: datetime) -> set[tuple[str, str, datetime]]:
    """The live engine's cycles, one per minute (log notifier), as `alerts run` would."""
    from finsentry.alerts.engine import AlertEngine
    from finsentry.alerts.notify import LogNotifier

    settings = AlertSettings.model_validate({"rules": rules, "notifiers": ["log"]})
    engine = AlertEngine(settings, store, "live", {"log": LogNotifier(settings)})
    lateness = timedelta(seconds=settings.allowed_lateness_s)
    minute = start + timedelta(minutes=1)
    while minute <= end:  # each cycle closes the minute before `minute`
        engine.cycle(minute + lateness)
        minute += timedelta(minutes=1)
    rows = store.query("SELECT rule, group_key, event_time FROM alerts FINAL "
                       "WHERE run_id = 'live'")
    return {(str(r["rule"]), str(r["group_key"]), r["event_time"]) for r in rows}


def test_backtest_equals_live_engine_on_demo_burst(demo: tuple[Store, SampleStream],
                                                   tmp_path: Path) -> None:
    store, sample = demo
    rules = _demo_rules()
    rules_file = tmp_path / "demo-rules.toml"
    rules_file.write_text(tomli_w.dumps({"rules": rules}), encoding="utf-8")
    start = sample.documents[0].published_at.replace(second=0, microsecond=0)
    end = sample.documents[-1].published_at.replace(second=0, microsecond=0) + \
        timedelta(minutes=30)
    assert minute_dt(int(start.timestamp()) // 60) == start

    live = _live_engine(store, rules, start, end)
    assert (("ticker-negative", f"ticker={sample.burst_ticker}") in
            {(rule, key) for rule, key, _ in live})
    before = checksums(store, "live")
    state = store.query("SELECT count() AS n FROM alert_state")[0]["n"]

    result = run_backtest(store, engine_evaluator(), [rules_file], "live", start, end)
    fired = {(a.rule, a.key, a.at) for side in result.sides for o in side.outcomes
             for a in o.alerts}
    assert fired == live
    assert checksums(store, "live") == before  # the backtest wrote nothing
    assert store.query("SELECT count() AS n FROM alert_state")[0]["n"] == state


def test_chunked_evaluation_equals_one_range(demo: tuple[Store, SampleStream], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The backtest evaluates long ranges in chunks carrying the rule state: same alerts."""
    from finsentry.alerts.evaluate import build_rule, evaluate_range
    from finsentry.alerts.rulefiles import parse_rule
    from finsentry.replay import engine_adapter

    store, sample = demo
    start = sample.documents[0].published_at.replace(second=0, microsecond=0)
    end = start + timedelta(hours=7)
    for entry in _demo_rules():
        rule = build_rule(parse_rule(entry, "demo rule"))
        whole = [(e.group_key, e.event_time) for e in evaluate_range(store, rule, "live", start,
                                                                     end)
                 if e.state == "firing"]
        monkeypatch.setattr(engine_adapter, "CHUNK", timedelta(minutes=37))
        chunked = engine_adapter.EngineEvaluator().fired(store, "live", rule, start, end)
        assert [(a.key, a.at) for a in chunked] == whole
