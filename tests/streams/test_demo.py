"""`finsentry demo` end to end: embedded broker child process, chdb, the shipped model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _demo(out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "finsentry", "demo", "--out", str(out), "--documents", "240"],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )


def test_demo_runs_twice_and_writes_chart(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert "242 messages produced, 240 documents stored, 2 dead-lettered" in first.stdout
    assert "documents/s" in first.stdout and "negative" in first.stdout
    # the default rules fire exactly one alert, for the burst ticker; its email lies next to
    # the report (.eml with the chart inline, .html with it as a data URI), subject printed
    burst = re.search(r"documents about (\S+) in the burst window", first.stdout)
    assert burst, first.stdout
    alert = re.search(r"^alert: \[finsentry\] \S+: (\S+) negative share .*, p < 1e-\d+, "
                      r"\d+ min$", first.stdout, re.M)
    assert alert and alert[1] == burst[1], first.stdout
    (eml,) = tmp_path.glob("alert-demo-*.eml")
    assert f"alert email: {eml}" in first.stdout
    assert eml.with_suffix(".html").is_file() and b"image/png" in eml.read_bytes()
    assert "data:image/png;base64," in eml.with_suffix(".html").read_text(encoding="utf-8")
    # the report is the dashboards' preview (tests/dashboards/test_preview.py renders it)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "Documents per minute by sentiment" in html
    assert 'class="error"' not in html
    assert len(list(tmp_path.glob("report-demo-*/ticker.html"))) == 1
    (health,) = tmp_path.glob("report-demo-*/health.html")  # the worker wrote its batch rows
    assert re.search(r'data-panel="Worker documents/s" [^>]*data-rows="[1-9]',
                     health.read_text(encoding="utf-8"))

    second = _demo(tmp_path)  # a second run works and keeps its rows apart (new run id)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "240 documents stored" in second.stdout
    assert len(list(tmp_path.glob("report-demo-*.html"))) == 2


def test_first_demo_is_quiet(tmp_path: Path) -> None:
    """A first run (nothing cached) prints one line about building the int8 models, and no
    library noise (TracerWarnings, ONNX quantisation hints, weight-loading bars)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    env["FINSENTRY_MODELS__DERIVED_CACHE"] = str(tmp_path / "derived")
    done = subprocess.run(
        [sys.executable, "-m", "finsentry", "demo", "--out", str(tmp_path / "out"),
         "--documents", "20"], capture_output=True, text=True, timeout=900, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr
    assert err.count("building the int8 models once") == 1, err[-3000:]
    for noise in ("TracerWarning", "Warning", "quantiz", "pre-processing", "Loading weights"):
        assert noise not in err, f"{noise!r} in:\n{err[-3000:]}"
