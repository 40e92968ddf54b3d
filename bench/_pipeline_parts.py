"""Pieces of bench/pipeline.py: the worker child, visibility polling, CPU/RSS probes, tables.

A worker child (`python bench/pipeline.py --child SPEC`) is a real `run_worker` with the real
classifier and ScoredSink, plus what the benchmark needs to see from outside: a progress file
(messages, inserts, rows), a stop file to end it cleanly, and its own peak RSS and CPU time at
exit. chdb allows one process per data path, so on chdb the child also runs the visibility
poller (writing `doc_id<TAB>time` lines); on a server the benchmark polls from outside.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _results import Table

log = logging.getLogger("bench.pipeline")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.1
WINDOW_US = 3_000_000  # a batch becomes visible within 3 s of its processed_at, else full scan


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (all threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class VisibilityPoller(threading.Thread):
    """Records when each document of a run first becomes queryable in scored_documents.

    Polls only rows processed in the last few seconds (by `version` = processed_at in µs), so a
    poll stays cheap however many documents the run holds; `sink(doc_id, t)` gets each new id.
    """

    def __init__(self, store: Any, run_id: str, sink: Any, interval: float = POLL_S) -> None:
        super().__init__(daemon=True, name="visibility-poller")
        self.store, self.run_id, self.sink, self.interval = store, run_id, sink, interval
        self.seen: set[str] = set()
        self.high = 0
        self.stopping = threading.Event()

    def poll_once(self) -> int:
        rows = self.store.query(
            "SELECT doc_id, version FROM scored_documents WHERE run_id = %(run)s "
            "AND version >= %(since)s",
            {"run": self.run_id, "since": max(0, self.high - WINDOW_US)})
        now = time.time()
        new = 0
        for r in rows:
            self.high = max(self.high, int(r["version"]))
            doc_id = str(r["doc_id"])
            if doc_id not in self.seen:
                self.seen.add(doc_id)
                self.sink(doc_id, now)
                new += 1
        return new

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # the store may be mid-retry; keep polling
                log.warning("visibility poll failed: %s", exc)
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


class CountingSink:
    """Wraps ScoredSink to count inserts and rows (rows per insert is a reported figure)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.inserts = 0
        self.rows = 0
        self.largest = 0

    def write(self, docs: Sequence[Any]) -> int:
        written = int(self.inner.write(docs))
        if written:
            self.inserts += 1
            self.rows += written
            self.largest = max(self.largest, written)
        return written


def run_child(spec_path: Path) -> None:
    """Body of a worker child: load models, run the worker until the stop file appears."""
    from finsentry.config import Settings
    from finsentry.models import load_classifier
    from finsentry.store import ScoredSink, migrate, open_store
    from finsentry.streams.worker import StopPolicy, run_worker

    spec = json.loads(spec_path.read_text())
    settings = Settings.model_validate(spec["settings"])
    progress, stop_file = Path(spec["progress"]), Path(spec["stop"])
    classifier = load_classifier(settings.models)
    classifier.predict_batch(["warm-up headline for the benchmark"] * 4)
    store = open_store(settings.clickhouse)
    migrate(store)
    sink = CountingSink(ScoredSink(store))
    poller = None
    if spec.get("visibility"):
        out = Path(spec["visibility"]).open("a", buffering=1, encoding="utf-8")
        poller = VisibilityPoller(store, settings.worker.run_id,
                                  lambda d, t: out.write(f"{d}\t{t:.4f}\n"))
        poller.start()

    class FileStop(StopPolicy):
        def reason(self, stats: Any) -> str | None:
            return "stop file" if stop_file.exists() else None

    def report(stats: Any, final: bool = False) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        data = {"pid": os.getpid(), "messages": stats.messages, "batches": stats.batches,
                "inserts": sink.inserts, "rows": sink.rows, "largest_insert": sink.largest,
                "rejected": stats.rejected, "peak_rss_mb": usage.ru_maxrss / 1024,
                "cpu_s": usage.ru_utime + usage.ru_stime, "final": final}
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(progress)

    stats = run_worker(settings, classifier, sink, FileStop(), on_progress=report)
    if poller is not None:
        poller.stop()
    store.close()
    report(stats, final=True)


@dataclass
class RunResult:
    backend: str
    workers: int
    docs_per_s: float | None = None
    latency_p50: float | None = None
    latency_p99: float | None = None
    paced_rate: float | None = None
    peak_rss_mb: float | None = None
    rows_per_insert: float | None = None
    rows_per_insert_paced: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-s per 1000 docs, by process
    bytes_per_row: float | None = None  # compressed scored_documents bytes per row (server)
    idle_cpu_pct: float | None = None  # workers + broker while no input arrives, % of one core
    load: tuple[float, float] = (0.0, 0.0)
    note: str = ""


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def tables(results: list[RunResult], bare_rate: float, bare_cpu: float,
           what: str, depth: int) -> list[Table]:
    thr = Table("Throughput: bare classifier vs end to end (produce -> queryable)",
                ["backend", "workers", "docs/s", "ratio to bare", "CPU ratio",
                 "CPU-s/1000 docs (all)",
                 "workers", "broker", "ClickHouse", "bench", "load avg"])
    thr.add("bare predict_batch", "-", bare_rate, 1.0, 1.0, bare_cpu, bare_cpu, None, None,
            None, None)
    for r in results:
        if r.docs_per_s is None:
            thr.add(r.backend, r.workers, None, None, None, None, None, None, None, None,
                    r.note)
            continue
        total = sum(v for k, v in r.cpu.items() if k != "bench")
        thr.add(r.backend, r.workers, r.docs_per_s, r.docs_per_s / bare_rate,
                bare_cpu / total if total else None, total,
                r.cpu.get("workers"), r.cpu.get("broker"), r.cpu.get("clickhouse"),
                r.cpu.get("bench"), f"{r.load[0]:.1f}-{r.load[1]:.1f}")
    thr.notes.append(f"Model: {what}; worker.pipeline_depth {depth}. Ratio target >= 0.9. "
                     "CPU columns: CPU seconds per 1000 documents during the timed burst; "
                     "'all' = workers + broker + ClickHouse server (chdb runs inside the "
                     "worker). CPU ratio = bare CPU-s / all CPU-s per document: the "
                     "throughput ratio to expect where the pipeline has the cores to itself; "
                     "'ratio to bare' is wall clock against the mean of two bare runs (before "
                     "and after), so it moves with the machine's load.")
    lat = Table("Latency at half capacity, memory, inserts",
                ["backend", "workers", "paced docs/s", "p50 s", "p99 s",
                 "peak worker RSS MB", "rows/insert (burst)", "rows/insert (paced)",
                 "idle CPU % (workers + broker)"])
    for r in results:
        if r.docs_per_s is None:
            continue
        lat.add(r.backend, r.workers, r.paced_rate, r.latency_p50, r.latency_p99,
                r.peak_rss_mb, r.rows_per_insert, r.rows_per_insert_paced, r.idle_cpu_pct)
    lat.notes.append("Targets: p99 <= 2 s, peak RSS <= 1.5 GB; rows/insert = documents per "
                     "ClickHouse insert (whole batches, never single rows).")
    return [thr, lat]
