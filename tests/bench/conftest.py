"""Benchmarks are scripts under bench/ (not a package); their helpers import as top-level
modules, as they do when a script runs."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
