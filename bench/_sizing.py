"""The 10 million documents/day sizing of docs/performance.md, from bench/pipeline.py's figures.

Inputs are what one worker measured end to end on the ClickHouse server (documents/s, CPU-s per
1000 documents, peak RSS) and the bytes per stored row; everything else is arithmetic written
out in the table, so a reader can redo it for another volume or machine.
"""

from __future__ import annotations

import math
from typing import Any

from _results import Table

DOCS_PER_DAY = 10_000_000
PEAK_FACTOR = 5.0  # market open / earnings bursts vs the daily mean
HEADROOM = 0.7  # run workers at most at 70% of their measured capacity
RETENTION_DAYS = 365  # scored_documents TTL (migration 4)
REPLICAS = 2


def _one_worker(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    for backend in ("server", "chdb"):
        for r in runs:
            if r.get("backend") == backend and r.get("workers") == 1 and r.get("docs_per_s") \
                    and r.get("classifier_threads", "default") == "default":
                return r
    return None


def sizing_tables(pipeline: dict[str, Any]) -> list[Table]:
    meta = pipeline.get("meta", {})
    run = _one_worker(meta.get("runs", []))
    if run is None:
        return []
    per_worker = float(run["docs_per_s"])
    cpu_per_1000 = float(sum(v for k, v in run.get("cpu", {}).items()
                             if k in ("workers",)))
    rss_gb = float(run.get("peak_rss_mb") or 0) / 1024
    bytes_per_row = float(meta.get("bytes_per_row") or 0)
    mean = DOCS_PER_DAY / 86400
    peak = mean * PEAK_FACTOR
    workers = max(2, math.ceil(peak / (per_worker * HEADROOM)))
    partitions = 2 ** math.ceil(math.log2(max(workers * 2, 12)))
    cores = peak * cpu_per_1000 / 1000
    day_gb = DOCS_PER_DAY * bytes_per_row / 1e9
    year_tb = day_gb * RETENTION_DAYS / 1000
    shards = max(1, math.ceil(year_tb * REPLICAS / 4))  # ~4 TB of compressed data per node
    t = Table(f"Sizing for {DOCS_PER_DAY:,} documents/day from one measured worker "
              f"({run['backend']}, {meta.get('model', '?')})",
              ["quantity", "value", "how"])
    t.add("mean rate", round(mean, 1), f"{DOCS_PER_DAY:,} / 86,400 s")
    t.add("peak rate", round(peak, 1), f"{PEAK_FACTOR:g}x the mean (opening bell, earnings)")
    t.add("one worker, end to end", round(per_worker, 1), "measured docs/s (bench/pipeline.py)")
    t.add("Faust workers", workers, f"peak / (one worker x {HEADROOM:g} headroom), at least 2")
    t.add("raw-topic partitions", partitions,
          "power of two >= 2x workers (room to scale out without re-partitioning)")
    t.add("worker CPU cores at peak", round(cores, 1),
          f"peak x {cpu_per_1000:.1f} CPU-s per 1000 documents (measured)")
    t.add("worker memory", f"{workers} x {rss_gb:.2f} GB", "measured peak RSS per worker")
    if bytes_per_row:
        t.add("stored per day", f"{day_gb:.1f} GB",
              f"{bytes_per_row:.0f} compressed bytes per scored_documents row (measured)")
        t.add("stored at retention", f"{year_tb:.2f} TB", f"{RETENTION_DAYS} days (TTL)")
        t.add("ClickHouse shards x replicas", f"{shards} x {REPLICAS}",
              "~4 TB compressed per node; inserts (~1 per batch) are far below any limit")
    t.add("ClickHouse inserts/s at peak",
          round(peak / max(1.0, float(run.get("rows_per_insert") or 1)), 1),
          "peak / measured rows per insert")
    return [t]
