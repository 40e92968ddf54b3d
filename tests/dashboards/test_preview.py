"""The preview opens in headless Chromium (Debian's `chromium`) without console errors, and the
rendered page shows every panel with data.

Assertions are on what Chromium rendered: `--dump-dom` returns the DOM after the page's own
script measured every drawn mark with getBoundingClientRect (panels' `data-drawn`), and the
`--screenshot` PNG is checked for the charts' colours. Grafana cannot run here; this preview is
the same panel definitions drawn by the second renderer.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from finsentry.dashboards.catalog import DASHBOARDS
from finsentry.dashboards.preview import render_preview
from finsentry.dashboards.spec import Dashboard
from finsentry.store import Store
from tests.dashboards.data import END, START

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--window-size=1400,2400", *extra,
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "SyntaxError" in line]


@pytest.fixture(scope="module")
def pages(filled_store: Store, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("preview")
    written = render_preview(filled_store, "live", START, END, out, ticker="AAPL")
    return {path.stem: path for path in written}


@pytest.mark.parametrize("spec", DASHBOARDS, ids=[d.slug for d in DASHBOARDS])
def test_preview_renders_every_panel_with_data(pages: dict[str, Path], tmp_path: Path,
                                               spec: Dashboard) -> None:
    slug = spec.slug
    done = chromium(pages[slug], tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not console_errors(done.stderr), console_errors(done.stderr)
    dom = BeautifulSoup(done.stdout, "html.parser")
    body = dom.find("body")
    assert body is not None and body.get("data-ready") == "1", "the page's script did not run"
    assert body.get("data-errors") is None
    panels = dom.select("section.panel")
    titles = [p["data-panel"] for p in panels]
    assert titles == [p.title for p in spec.panels]
    for panel in panels:
        assert not panel.select(".error"), f"{panel['data-panel']}: {panel.select('.error')}"
        assert int(str(panel.get("data-drawn", "0"))) > 0, f"{panel['data-panel']} drew nothing"
    # untrusted text stayed text: no injected element, no javascript: link
    assert not dom.select("section.panel script, section.panel b")
    assert not [a for a in dom.select("a[href]") if str(a["href"]).startswith("javascript")]


def test_screenshot_shows_the_charts(pages: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "market.png"
    done = chromium(pages["market"], tmp_path / "profile", f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert not console_errors(done.stderr)
    image = Image.open(shot).convert("RGB")
    red = green = 0
    for count, colour in image.getcolors(maxcolors=1 << 24) or []:
        assert isinstance(colour, tuple)
        r, g, b = colour[:3]
        red += count if r > 180 and g < 110 and b < 110 else 0  # negative series, heatmap
        green += count if g > 120 and r < 100 and b < 100 else 0  # positive series
    assert red > 2000 and green > 200, (red, green)


def test_cli_preview_writes_pages(filled_store: Store, tmp_path: Path) -> None:
    from finsentry.cli import cli

    # chdb is already open in this process: point the configured store at the same path
    env = {"FINSENTRY_CLICKHOUSE__CHDB_PATH": str(filled_store.settings.chdb_path),
           "FINSENTRY_CLICKHOUSE__DATABASE": filled_store.database}
    result = CliRunner(env=env).invoke(
        cli, ["dashboards", "preview", "--out", str(tmp_path), "--hours", "6"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.html")) == sorted(
        [f"{d.slug}.html" for d in DASHBOARDS] + ["index.html"])
