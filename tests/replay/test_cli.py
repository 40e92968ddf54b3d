"""`finsentry replay` and `finsentry backtest` from the command line (ClickHouse server: the
embedded engine's data path is already held open by the test's own store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from finsentry.cli import cli
from finsentry.store import ScoredSink, Store
from tests.replay.helpers import T0, minute_aggregates, scored_stream
from tests.replay.test_runs import _env

HERE = Path(__file__).parent


# Server only: the embedded engine's data path is held open by the test's own store.
@pytest.mark.parametrize("store_settings", ["server"], indirect=True)
def test_replay_then_backtest_cli(store: Store, tmp_path: Path) -> None:
    ScoredSink(store).write(scored_stream(300, minutes=120))
    env = _env(store.settings) | {"FINSENTRY_REPLAY__PUBLISH": "false"}
    runner = CliRunner()
    replayed = runner.invoke(cli, ["replay", "--source", "clickhouse", "--from", T0.isoformat(),
                                   "--to", "2024-03-04T11:00:00", "--run", "cli-run",
                                   "--no-progress"], env=env, catch_exceptions=False)
    assert replayed.exit_code == 0, replayed.output
    assert "run cli-run: 300 documents replayed, 300 stored, 0 published" in replayed.output
    assert minute_aggregates(store, "cli-run") == minute_aggregates(store, "live")

    labels = tmp_path / "labels.csv"
    labels.write_text("key,start,end\nBAC,2024-03-04T10:00:00,2024-03-04T11:00:00\n",
                      encoding="utf-8")
    out = tmp_path / "bt.html"
    tested = runner.invoke(cli, ["backtest", "--rules", str(HERE / "rules_neg.toml"),
                                 "--from", T0.isoformat(), "--to", "2024-03-04T11:00:00",
                                 "--run", "cli-run", "--events", str(labels),
                                 "--compare-run", "live", "--out", str(out)],
                           env=env, catch_exceptions=False)
    assert tested.exit_code == 0, tested.output
    assert "A: run cli-run  neg-spike:" in tested.output and "recall 100%" in tested.output
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    a, b = data["sides"]
    assert a["rules"][0]["fired"] == b["rules"][0]["fired"]  # same data, same alerts
    assert store.query("SELECT count() AS n FROM alerts")[0]["n"] == 0  # nothing written
