"""bench/backtest.py --smoke runs and prints both tables (the figures are not asserted: speed is
measured by the script itself, never by a timed test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "backtest.py"


def test_backtest_bench_smoke(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--results", str(tmp_path)],
                          capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "key-minutes/s" in done.stdout and "year x 500 keys (s)" in done.stdout
    assert "| neg-spike | 5 | 1 | 7,200 |" in done.stdout
    assert "clickhouse (copy scores) | 300 |" in done.stdout
