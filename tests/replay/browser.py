"""Open a page in Debian's headless Chromium: the rendered DOM, console messages, a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--enable-logging=stderr", "--v=0"]
CONSOLE = re.compile(r":(?:INFO|WARNING|ERROR):CONSOLE[^\]]*\]\s*(.*)")


@dataclass
class Rendered:
    dom: str
    console: list[str]
    screenshot: Path


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed")
    return path


def render(page: Path, work: Path, size: str = "900,1400") -> Rendered:
    """--dump-dom after load (console captured from the log) and a --screenshot."""
    url = page.resolve().as_uri()
    dom = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={work / 'profile-dom'}",
                          "--dump-dom", url], capture_output=True, text=True, timeout=120,
                         check=True)
    shot = work / "page.png"
    shoot = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={work / 'profile-shot'}",
                            f"--screenshot={shot}", f"--window-size={size}",
                            "--hide-scrollbars", url],
                           capture_output=True, text=True, timeout=120, check=True)
    console = [m.group(1) for text in (dom.stderr, shoot.stderr)
               for m in CONSOLE.finditer(text)]
    return Rendered(dom.stdout, console, shot)


def colour_stats(png: Path) -> tuple[int, float]:
    """(distinct colours, share of non-white pixels) of a screenshot."""
    from PIL import Image

    with Image.open(png) as img:
        rgb = img.convert("RGB")
        counts = rgb.getcolors(maxcolors=1 << 24) or []
        total = rgb.width * rgb.height
    white = sum(n for n, colour in counts if colour == (255, 255, 255))
    return len(counts), (total - white) / total
