"""Every benchmark in its smoke mode (tiny input), so none can rot; figures are not asserted,
only that each part was measured. pipeline.py runs on the session's real broker and
ClickHouse 18.16 server plus chdb, with real worker processes and the shipped classifier."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.conftest import BENCH
from tests.fixtures.clickhouse import ClickHouseServer


def _run(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=BENCH.parent)


def test_pipeline_smoke(tmp_path: Path, kafka_bootstrap: str,
                        clickhouse_server: ClickHouseServer) -> None:
    done = _run(str(BENCH / "pipeline.py"), "--smoke", "--results", str(tmp_path),
                "--bootstrap", kafka_bootstrap,
                "--clickhouse", f"{clickhouse_server.host}:{clickhouse_server.port}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "ratio to bare" in done.stdout and "p99 s" in done.stdout
    record = json.loads((tmp_path / "pipeline.json").read_text())
    runs = {(r["backend"], r["classifier_threads"]): r for r in record["meta"]["runs"]}
    # each backend with the runtime's threads and with a core left to the plumbing
    assert set(runs) == {(b, t) for b in ("chdb", "server") for t in ("default", "spare")}
    assert record["meta"]["bare_docs_per_s"] > 0
    for r in runs.values():
        assert r["workers"] == 1 and r["docs_per_s"] > 0
        assert r["latency_p50"] > 0 and r["latency_p99"] >= r["latency_p50"]
        assert r["peak_rss_mb"] > 100 and r["cpu"]["workers"] > 0
        assert r["rows_per_insert"] > 1  # whole batches, never single rows
        assert r["bare"][0] > 0  # the bare loop ran right before and after this burst
        assert 0 < r["classifier_busy"] <= 1.05 and r["threads"]["finsentry-classify"] > 0
        # the bare loop beside the services alone (bench/_ceiling.py) ran in its own process
        assert r["ceiling"] > 0 and r["ceiling_cpu"]["load"] > 0
        # every burst's ratio is kept; the row is the median one's
        assert len(r["ratios"]) == 2 and min(r["ratios"]) > 0
        # the topics were emptied after the warm-up and each burst (noida-db's cost per
        # record grows with its log): warm-up + 2 bursts, raw and scored, at the least
        assert r["trimmed"] >= 2 * (2 * 96 + 8)
        split = r["split"]  # one worker: the classify thread's time splits the burst's wall
        assert 0 < split["model"] < split["wall"] and split["bare"] > 0
        assert abs(split["model"] + split["records"] + split["waiting"] - split["wall"]) < 1e-6
    assert record["meta"]["visibility"] == "ack"
    # per thread setting: the first pass, then per backend bare, burst, bare, burst, bare
    # (smoke runs 2 bursts; the ceiling's pass is not a bare figure)
    assert len(record["meta"]["bare_runs_docs_per_s"]) == 7
    assert [len(b["runs"]) for b in record["meta"]["bare_by_threads"].values()] == [7, 7]
    assert runs[("server", "default")]["bytes_per_row"] > 0


def test_models_smoke(tmp_path: Path) -> None:
    done = _run(str(BENCH / "models.py"), "--smoke", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    record = json.loads((tmp_path / "models.json").read_text())
    speed, parallel = record["tables"]
    assert speed["columns"][4] == "docs/s" and speed["rows"] and speed["rows"][0][4] > 0
    assert [row[0] for row in parallel["rows"]] == ["lanes", "operators"]
    assert all(row[1] > 0 and row[2] > 0 for row in parallel["rows"])


OTHERS = sorted(p for p in BENCH.glob("*.py")
                if not p.name.startswith("_") and p.stem not in ("pipeline", "models"))


@pytest.mark.parametrize("script", OTHERS, ids=lambda p: p.stem)
def test_other_benchmarks_smoke(script: Path, tmp_path: Path) -> None:
    """Benchmarks added later (ingest, backtest, ...) get the same check once they use
    bench/_results.py (which gives them --smoke and --results)."""
    if "from _results import" not in script.read_text(encoding="utf-8"):
        pytest.skip(f"{script.name} does not use bench/_results.py yet")
    done = _run(str(script), "--smoke", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert (tmp_path / f"{script.stem}.json").is_file()
