"""Re-scored replays with two real models give two runs; the comparison report shows both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from finsentry.config import ClickHouseSettings
from finsentry.models.paths import shipped
from finsentry.replay.backtest import run_backtest
from finsentry.replay.evaluator import engine_evaluator
from finsentry.replay.report import write_report
from finsentry.replay.runner import Replayer, ReplayPlan
from finsentry.store import ScoredSink, Store, migrate, open_store
from tests.replay.helpers import T0, checksums, scored_stream, settings_for

HERE = Path(__file__).parent
END = T0 + timedelta(minutes=120)


@pytest.fixture
def chdb_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(ClickHouseSettings(chdb_path=tmp_path / "chdb")) as store:
        migrate(store)
        yield store


def test_two_models_two_runs_compared(chdb_store: Store, tmp_path: Path) -> None:
    second = shipped("zh-sentiment")
    if second is None:
        pytest.skip("no second checkpoint committed")
    ScoredSink(chdb_store).write(scored_stream(90, minutes=120))
    live = checksums(chdb_store, "live")
    settings = settings_for(chdb_store, replay={"publish": False, "batch_size": 64})
    first = Replayer(settings, chdb_store, ReplayPlan("model-a", "clickhouse", T0, END,
                                                      rescore=True), progress=False).run()
    other = Replayer(settings, chdb_store, ReplayPlan("model-b", "clickhouse", T0, END,
                                                      rescore=True, model=str(second)),
                     progress=False).run()
    assert first.stored == other.stored == 90 and first.model != other.model
    assert checksums(chdb_store, "live") == live
    models = {r["run_id"]: r["m"] for r in chdb_store.query(
        "SELECT run_id, any(model_name) AS m FROM scored_documents FINAL "
        "WHERE run_id IN ('model-a', 'model-b') GROUP BY run_id")}
    assert models["model-a"] != models["model-b"] and "zh-sentiment" in models["model-b"]
    labels = {r["run_id"]: r["n"] for r in chdb_store.query(
        "SELECT run_id, countIf(sentiment = 'negative') AS n FROM scored_documents FINAL "
        "GROUP BY run_id")}
    assert set(labels) == {"live", "model-a", "model-b"}

    result = run_backtest(chdb_store, engine_evaluator(), [HERE / "rules_neg.toml"], "model-a",
                          T0, END, compare_run="model-b")
    html, data = write_report(result, tmp_path / "compare.html")
    page = html.read_text(encoding="utf-8")
    assert "A: run model-a" in page and "B: run model-b" in page
    assert "zh-sentiment" in page  # each side names its model
    sides = json.loads(data.read_text(encoding="utf-8"))["sides"]
    assert [s["run_id"] for s in sides] == ["model-a", "model-b"]
