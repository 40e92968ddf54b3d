"""bench/ingest.py --smoke runs end to end and writes its JSON (figures are not asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ingest.py"


def test_ingest_bench_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_ingest", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_ingest", module)  # dataclasses look it up
    monkeypatch.syspath_prepend(str(BENCH.parent))  # bench/_results.py, as when run as a script
    spec.loader.exec_module(module)
    out = tmp_path / "ingest.json"
    module.main(["--smoke", "--out", str(out), "--results", str(tmp_path / "results")])
    assert (tmp_path / "results" / "ingest.json").is_file()
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["documents"] == 2000
    small, large = result["windows"]
    assert (small["window_h"], large["window_h"]) == (2.0, 24.0)
    assert large["signatures_held_peak"] > small["signatures_held_peak"] > 0
    for row in (small, large):
        assert row["verdict_new"] + row["verdict_near_duplicate"] + row["verdict_duplicate"] \
            == 2000
        assert row["verdict_duplicate"] > 0 and row["docs_per_cpu_s"] > 0
