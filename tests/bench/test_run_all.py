"""bench/run_all on a scratch bench folder: runs every script, rewrites the document's blocks
(tables, command, machine, sizing) and keeps the hand-written text around them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.bench.conftest import BENCH

FAKE_PIPELINE = '''
import argparse
from pathlib import Path
from _results import Table, emit
ap = argparse.ArgumentParser()
ap.add_argument("--results", type=Path)
ap.add_argument("--smoke", action="store_true")
a = ap.parse_args()
t = Table("Throughput", ["backend", "docs/s"])
t.add("server", 80.0)
run = {"backend": "server", "workers": 1, "docs_per_s": 80.0, "cpu": {"workers": 12.0},
       "peak_rss_mb": 1200.0, "rows_per_insert": 60.0}
emit("pipeline", [t], out_dir=a.results,
     meta={"model": "m1", "runs": [run], "bytes_per_row": 250.0, "smoke": a.smoke})
'''
PLAIN = 'print("| a | b |")\n'
BROKEN = 'from _results import emit\nraise SystemExit(3)\n'


def _bench_dir(tmp: Path) -> Path:
    d = tmp / "bench"
    d.mkdir()
    for helper in ("_results.py", "_sizing.py", "run_all"):
        shutil.copy(BENCH / helper, d / helper)
    (d / "pipeline.py").write_text(FAKE_PIPELINE)
    (d / "plain.py").write_text(PLAIN)
    return d


def _run_all(d: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(d / "run_all"), "--bench-dir", str(d), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_rewrites_the_document(tmp_path: Path) -> None:
    d = _bench_dir(tmp_path)
    doc = tmp_path / "performance.md"
    doc.write_text("# Perf\n\nintro\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\n"
                   "middle\n\n<!-- sizing:start -->\nold\n<!-- sizing:end -->\n\noutro\n")
    done = _run_all(d, "--results", str(tmp_path / "res"), "--doc", str(doc))
    assert done.returncode == 0, done.stdout + done.stderr
    text = doc.read_text()
    assert "intro" in text and "middle" in text and "outro" in text and "old" not in text
    assert "### pipeline" in text and "| server | 80.0 |" in text
    assert "Command: `.venv/bin/python" in text and "pipeline.py --results" in text
    assert "cores (" in text and "model m1" in text
    assert "### plain" in text and "| a | b |" in text  # not adopted: stdout verbatim
    assert "Faust workers" in text and "raw-topic partitions" in text  # sizing from pipeline
    assert text.index("### pipeline") < text.index("### plain")


def test_smoke_runs_adopted_scripts_only_and_leaves_docs_alone(tmp_path: Path) -> None:
    d = _bench_dir(tmp_path)
    (d / "broken.py").write_text(BROKEN)
    done = _run_all(d, "--smoke", "--results", str(tmp_path / "res"))
    assert done.returncode == 1  # broken.py failed
    assert "pipeline: ok" in done.stdout and "broken: failed (exit 3)" in done.stdout
    assert "plain: skipped" in done.stdout
    assert '"smoke": true' in (tmp_path / "res" / "pipeline.json").read_text()
