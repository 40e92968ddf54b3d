"""The demo report renders crawled text as text: titles and sources are autoescaped."""

from __future__ import annotations

import subprocess
from pathlib import Path

from finsentry.store import ScoredSink, Store
from finsentry.streams.demo import DemoSummary, write_report
from finsentry.streams.sample import generate
from tests.store.factories import scored

SCRIPT = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def test_script_title_shows_as_text(store: Store, tmp_path: Path) -> None:
    doc = scored(0)  # factories: i % 3 == 0 is negative, so it lands in the report's table
    doc = doc.model_copy(update={"document": doc.document.model_copy(
        update={"title": SCRIPT, "source": "<b>evil-source</b>"})})
    ScoredSink(store).write([doc])
    sample = generate(10, seed=1)
    report = tmp_path / "report.html"
    summary = DemoSummary(run_id="run-1", produced=1, stored=1, dead_lettered=0, seconds=1.0,
                          sentiments={"negative": 1}, topics={"earnings": 1}, model="m",
                          report=report, burst_ticker=sample.burst_ticker)
    write_report(store, summary, sample, report)
    html = report.read_text(encoding="utf-8")
    assert "<script>document.title" not in html and "<b>evil-source</b>" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "&lt;b&gt;evil-source&lt;/b&gt;" in html
    # a real browser: the script did not run (the page title is the report's own)
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={tmp_path / 'chrome'}",
         "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<title>finsentry demo report run-1</title>" in done.stdout
    assert "pwned" not in done.stdout.split("</title>")[0]
