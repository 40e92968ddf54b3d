"""`finsentry runs list|drop`: runs are listed with their span and model; a drop removes one
run's rows everywhere and never the live run without --force."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from finsentry.alerts.lifecycle import RuleState
from finsentry.alerts.state import load_state, save_state
from finsentry.cli import cli
from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreError
from finsentry.replay.runner import Replayer, ReplayPlan
from finsentry.store import ScoredSink, Store
from finsentry.store.runs import drop_run, list_runs
from tests.replay.helpers import T0, checksums, scored_stream, settings_for


def _env(settings: ClickHouseSettings) -> dict[str, str]:
    env = {"FINSENTRY_CLICKHOUSE__DATABASE": settings.database,
           "FINSENTRY_CLICKHOUSE__CHDB_PATH": str(settings.chdb_path)}
    if settings.host:
        env |= {"FINSENTRY_CLICKHOUSE__HOST": settings.host,
                "FINSENTRY_CLICKHOUSE__PORT": str(settings.port)}
    return env


def test_list_and_drop(store: Store) -> None:
    ScoredSink(store).write(scored_stream(30))
    settings = settings_for(store, replay={"publish": False})
    Replayer(settings, store, ReplayPlan("old-model", "clickhouse", T0,
                                         T0 + timedelta(hours=1)), progress=False).run()
    save_state(store, "old-model", "neg", RuleState(through=1, spec_hash="x"))  # alert state
    save_state(store, "live", "neg", RuleState(through=1, spec_hash="x"))
    live = checksums(store, "live")
    runs = {r.run_id: r for r in list_runs(store)}
    assert runs["live"].documents == runs["old-model"].documents == 30
    assert runs["old-model"].status == "done" and runs["old-model"].models == ["test-model"]
    assert runs["old-model"].first is not None and runs["old-model"].first >= T0

    with pytest.raises(StoreError, match="live run"):
        drop_run(store, "live")
    removed = drop_run(store, "old-model")
    assert removed["scored_documents"] == 30 and removed["runs"] >= 1
    assert removed["sentiment_minute"] > 0 and removed["sentiment_rollup"] > 0
    assert checksums(store, "old-model") == {t: (0, 0) for t in checksums(store, "live")}
    assert checksums(store, "live") == live
    assert load_state(store, "old-model", "neg") is None and removed["alert_state"] >= 1
    assert load_state(store, "live", "neg") is not None
    assert "old-model" not in {r.run_id for r in list_runs(store)}


# Server only: the embedded engine's data path is held open by the test's own store.
@pytest.mark.parametrize("store_settings", ["server"], indirect=True)
def test_cli_runs(store: Store) -> None:
    ScoredSink(store).write(scored_stream(12, run_id="r-cli") + scored_stream(5))
    runner = CliRunner()
    env = _env(store.settings)
    listed = runner.invoke(cli, ["runs", "list"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0
    assert any(line.startswith("r-cli  12  ") for line in listed.output.splitlines())
    refused = runner.invoke(cli, ["runs", "drop", "live"], env=env)
    assert refused.exit_code != 0 and "without --force" in str(refused.exception)
    dropped = runner.invoke(cli, ["runs", "drop", "r-cli"], env=env, catch_exceptions=False)
    assert dropped.exit_code == 0 and "scored_documents 12" in dropped.output
