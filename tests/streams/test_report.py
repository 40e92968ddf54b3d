"""The demo report (the dashboards' preview) renders crawled titles and sources as text."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from finsentry.dashboards.preview import render_preview
from finsentry.store import ScoredSink, Store
from tests.store.factories import scored

SCRIPT = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def test_script_title_shows_as_text(store: Store, tmp_path: Path) -> None:
    doc = scored(0)  # factories: i % 3 == 0 is negative, so it lands in the drill-down's table
    doc = doc.model_copy(update={"document": doc.document.model_copy(
        update={"title": SCRIPT, "source": "<b>evil-source</b>"})})
    ScoredSink(store).write([doc])
    report = tmp_path / "report.html"
    start = doc.document.published_at - timedelta(minutes=5)
    pages = render_preview(store, "run-1", start, start + timedelta(minutes=10),
                           tmp_path / "preview", ticker="AAPL", copies=(report,))
    html = "".join(p.read_text(encoding="utf-8") for p in pages)
    assert "<script>document.title" not in html and "<b>evil-source</b>" not in html
    assert "&lt;script&gt;document.title=" in html
    assert "&lt;b&gt;evil-source&lt;/b&gt;" in html
    ticker_page = next(p for p in pages if "&lt;script&gt;document.title=" in
                       p.read_text(encoding="utf-8"))
    # a real browser: the script did not run (the page keeps its own title)
    for page in (report, ticker_page):
        done = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", f"--user-data-dir={tmp_path / 'chrome'}",
             "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
            check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "pwned" not in done.stdout.split("</title>")[0]
