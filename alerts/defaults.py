"""The shipped default rules (deploy/finsentry.toml has the same; a test keeps them equal).
`finsentry demo` uses them when the configuration names no rules."""

from __future__ import annotations

from typing import Any

DEFAULT_RULES: list[dict[str, Any]] = [
    {"type": "significance", "name": "ticker-negative", "group_by": ["ticker"],
     "window_minutes": 15, "extra_windows": [5, 30, 60, 120, 240],
     "false_alarms_per_key_day": 0.01, "alpha_split": "window_length", "scan_factor": 8,
     "baseline_uncertainty": True,
     "min_ratio": 1.5, "min_negatives": 4, "baseline_hours": 72, "warmup_minutes": 1440,
     "realert_minutes": 240, "severity": "warning",
     "filter": {"min_relevance": 0.5, "min_novelty": 0.3}},
    {"type": "flatline", "name": "feed-silent", "group_by": [], "window_minutes": 30,
     "threshold": 1, "history_minutes": 1440, "severity": "critical"},
]
