"""Pieces of bench/pipeline.py: the worker child, visibility polling, CPU/RSS probes, tables.

A worker child (`python bench/pipeline.py --child SPEC`) is a real `run_worker` with the real
classifier and ScoredSink, plus what the benchmark needs to see from outside: a progress file
(messages, inserts, rows, CPU seconds per thread), a stop file to end it cleanly, and its own
peak RSS and CPU time at exit.

When a document is queryable: by default (`--visibility ack`) the moment the ClickHouse insert
holding it was acknowledged, written by the child as `doc_id<TAB>time` lines. A MergeTree
insert is synchronous: once the server (or chdb) answers, the new part is committed and every
later SELECT sees it; the benchmark then checks with a query that every document really is
stored. `--visibility poll` instead polls scored_documents every 0.1 s (on chdb from inside the
child, which allows one process per data path; on a server from the benchmark): an observation
from outside, but one that costs the pipeline CPU (about one query per document on a loaded
2-core machine) and adds up to 0.1 s per document.
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
    """Wraps ScoredSink to count inserts and rows (rows per insert is a reported figure) and,
    with `acked`, to record when each document's insert was acknowledged (= queryable)."""

    def __init__(self, inner: Any, acked: Any = None) -> None:
        self.inner = inner
        self.store = inner.store  # the worker's batch metrics go to it, as in `finsentry worker`
        self.acked = acked
        self.inserts = 0
        self.rows = 0
        self.largest = 0

    def write(self, docs: Sequence[Any]) -> int:
        written = int(self.inner.write(docs))
        if self.acked is not None:
            now = time.time()
            self.acked.write("".join(f"{d.document.id}\t{now:.4f}\n" for d in docs))
        if written:
            self.inserts += 1
            self.rows += written
            self.largest = max(self.largest, written)
        return written


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process per thread, by Python thread name; threads Python did not
    start (ONNX Runtime's and the tokenizer's pools, ClickHouse's) are summed as 'native'."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task.name), "native")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


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
    out = (Path(spec["visibility"]).open("a", buffering=1, encoding="utf-8")
           if spec.get("visibility") else None)
    sink = CountingSink(ScoredSink(store), out if spec.get("acked") else None)
    poller = None
    if out is not None and not spec.get("acked"):
        poller = VisibilityPoller(store, settings.worker.run_id,
                                  lambda d, t: out.write(f"{d}\t{t:.4f}\n"))
        poller.start()

    class FileStop(StopPolicy):
        def reason(self, stats: Any) -> str | None:
            return "stop file" if stop_file.exists() else None

    last: dict[str, Any] = {"key": None, "at": 0.0}

    def report(stats: Any, final: bool = False) -> None:
        # the watchdog calls this every 0.5 s on the event loop: write only what changed (or
        # every 2 s), so the benchmark's own bookkeeping stays out of the worker's time
        key = (stats.messages, sink.inserts)
        if not final and key == last["key"] and time.monotonic() - last["at"] < 2.0:
            return
        last.update(key=key, at=time.monotonic())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        data = {"pid": os.getpid(), "messages": stats.messages, "batches": stats.batches,
                "inserts": sink.inserts, "rows": sink.rows, "largest_insert": sink.largest,
                "rejected": stats.rejected,
                "model_s": stats.model_seconds, "predict_s": stats.predict_seconds,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "cpu_s": usage.ru_utime + usage.ru_stime, "threads": thread_cpu(),
                "final": final}
        if final:  # what the store holds for the run: the benchmark checks nothing is missing
            data["stored_ids"] = sink.inner.count_documents(settings.worker.run_id)
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(progress)

    stats = run_worker(settings, classifier, sink, FileStop(), on_progress=report)
    if poller is not None:
        poller.stop()
    report(stats, final=True)
    store.close()
    if out is not None:
        out.close()


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
    threads: dict[str, float] = field(default_factory=dict)  # worker CPU-s/1000 by thread
    classifier_busy: float | None = None  # share of the burst the classify thread worked
    bare: tuple[float, float] | None = None  # bare docs/s, CPU-s/1000 right before + after
    idle_cpu_pct: float | None = None  # workers + broker while no input arrives, % of one core
    classifier_threads: str = "default"  # the models.threads setting (bench --threads)
    ceiling: float | None = None  # bare beside the services alone / bare alongside (_ceiling)
    ceiling_cpu: dict[str, float] = field(default_factory=dict)  # its load, broker, server
    load: tuple[float, float] = (0.0, 0.0)
    note: str = ""
    ratios: list[float] = field(default_factory=list)  # every burst's, against its own bare
    split: dict[str, float] = field(default_factory=dict)  # where the wall time went (1 worker)
    bursts: list[dict[str, Any]] = field(default_factory=list)  # each burst's own figures
    trimmed: int = 0  # records deleted from the run's topics between phases (_burst.trim_topics)


@dataclass
class Burst:
    """One timed burst: totals over its wall time (CPU and thread seconds, not yet per doc)."""

    docs: int
    wall: float
    cpu: dict[str, float]  # CPU-s by process
    threads: dict[str, float]  # the workers' CPU-s by thread
    classify_s: float  # the classify threads' busy time (decode, model calls, records)
    predict_s: float  # of which inside predict_batch
    inserts: int
    rows: int

    @property
    def rate(self) -> float:
        return self.docs / self.wall


def combine(result: RunResult, bursts: list[Burst], bares: list[tuple[float, float]]) -> int:
    """Fill `result` from N bursts and the N + 1 bare passes around them (bare, burst, bare,
    burst, ... bare): each burst's ratio is against the passes right before and after it; the
    row shows the median burst, CPU and thread columns are totals over all bursts. Returns the
    median burst's index."""
    near = [((bares[i][0] + bares[i + 1][0]) / 2, (bares[i][1] + bares[i + 1][1]) / 2)
            for i in range(len(bursts))]
    result.ratios = [b.rate / n[0] for b, n in zip(bursts, near, strict=True)]
    result.bursts = [{"docs_per_s": b.rate, "bare": n[0], "ratio": r,
                      "cpu": {k: v * 1000 / b.docs for k, v in b.cpu.items()}}
                     for b, n, r in zip(bursts, near, result.ratios, strict=True)]
    mid = sorted(range(len(bursts)), key=lambda i: result.ratios[i])[len(bursts) // 2]
    result.docs_per_s, result.bare = bursts[mid].rate, near[mid]
    docs, wall = sum(b.docs for b in bursts), sum(b.wall for b in bursts)
    result.cpu = {k: sum(b.cpu[k] for b in bursts) * 1000 / docs for k in bursts[0].cpu}
    names = {k for b in bursts for k in b.threads}
    result.threads = {k: sum(b.threads.get(k, 0.0) for b in bursts) * 1000 / docs
                      for k in names}
    workers = result.workers
    result.classifier_busy = sum(b.classify_s for b in bursts) / wall / workers
    inserts = sum(b.inserts for b in bursts)
    result.rows_per_insert = sum(b.rows for b in bursts) / inserts if inserts else None
    if workers == 1:  # one classify thread: its time splits the wall clock
        classify, predict = sum(b.classify_s for b in bursts), sum(b.predict_s for b in bursts)
        bare = sum(b.docs / n[0] for b, n in zip(bursts, near, strict=True))
        result.split = {"wall": wall, "bare": bare, "model": predict,
                        "records": classify - predict, "waiting": wall - classify}
    return mid


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def tables(results: list[RunResult], bares: dict[str, tuple[float, float]],
           what: str, depth: int) -> list[Table]:
    """`bares`: each thread setting's bare (docs/s, CPU-s per 1000 documents), all runs."""
    thr = Table("Throughput: bare classifier vs end to end (produce -> queryable)",
                ["backend", "workers", "classifier threads", "docs/s", "bare docs/s alongside",
                 "ratio to bare", "ratio, every burst",
                 "ceiling (services alone)", "CPU ratio", "worker CPU ratio",
                 "CPU-s/1000 docs (all)",
                 "workers", "broker", "ClickHouse", "bench", "load avg"])
    for label, (bare_rate, bare_cpu) in bares.items():
        thr.add("bare predict_batch (all runs)", "-", label, bare_rate, bare_rate, 1.0, None,
                None, 1.0, 1.0, bare_cpu, bare_cpu, None, None, None, None)
    for r in results:
        if r.docs_per_s is None:
            thr.add(r.backend, r.workers, r.classifier_threads, None, None, None, None, None,
                    None, None, None, None, None, None, None, r.note)
            continue
        total = sum(v for k, v in r.cpu.items() if k != "bench")
        near_rate, near_cpu = r.bare or bares.get(r.classifier_threads, (1.0, 1.0))
        thr.add(r.backend, r.workers, r.classifier_threads, r.docs_per_s, near_rate,
                r.docs_per_s / near_rate, " ".join(f"{x:.2f}" for x in sorted(r.ratios)),
                r.ceiling, near_cpu / total if total else None,
                near_cpu / r.cpu["workers"] if r.cpu.get("workers") else None, total,
                r.cpu.get("workers"), r.cpu.get("broker"), r.cpu.get("clickhouse"),
                r.cpu.get("bench"), f"{r.load[0]:.1f}-{r.load[1]:.1f}")
    thr.notes.append(f"Model: {what}; worker.pipeline_depth {depth}. Ratio target >= 0.9. "
                     "Classifier threads: 'default' = the runtime's own (one per core: the "
                     "classifier takes every core, as `finsentry worker` does by default); "
                     "'spare' = cores - 1 (models.threads) for the bare loop and the worker "
                     "alike, leaving one core to the plumbing and services. "
                     "CPU columns: CPU seconds per 1000 documents during the timed burst; "
                     "'all' = workers + broker + ClickHouse server (chdb runs inside the "
                     "worker). CPU ratio = bare CPU-s / all CPU-s per document: the "
                     "throughput ratio to expect where the pipeline has the cores to itself; "
                     "worker CPU ratio = bare CPU-s / the workers' own CPU-s (broker and "
                     "ClickHouse server left out: on a deployment they have machines of their "
                     "own; chdb stays in, it runs inside the worker); "
                     "'ratio to bare' is wall clock against the bare loop run right before and "
                     "right after that burst (same texts, batch size and threads, model warm, "
                     "services up but idle), so load drifting between rows cancels out; each "
                     "configuration runs several bursts (--bursts), each between two bare "
                     "passes: the row shows the median burst, 'every burst' all of them, "
                     "lowest first, and the CPU columns are totals over all of them; "
                     "ceiling = the bare loop once more while a separate process replays only "
                     "the services' share of the burst (the same payloads produced to the same "
                     "broker; on the server backend the same rows inserted in the burst's "
                     "insert sizes), over bare alongside: the ratio a worker costing nothing "
                     "would reach on this machine (bench/_ceiling.py); "
                     "queryable = the insert holding the document was acknowledged "
                     "(--visibility).")
    lat = Table("Latency at half capacity, memory, inserts",
                ["backend", "workers", "classifier threads", "paced docs/s", "p50 s", "p99 s",
                 "peak worker RSS MB", "rows/insert (burst)", "rows/insert (paced)",
                 "idle CPU % (workers + broker)", "classifier busy % (burst)"])
    for r in results:
        if r.docs_per_s is None:
            continue
        lat.add(r.backend, r.workers, r.classifier_threads, r.paced_rate, r.latency_p50,
                r.latency_p99, r.peak_rss_mb, r.rows_per_insert, r.rows_per_insert_paced,
                r.idle_cpu_pct,
                None if r.classifier_busy is None else 100 * r.classifier_busy)
    lat.notes.append("Targets: p99 <= 2 s, peak RSS <= 1.5 GB; rows/insert = documents per "
                     "ClickHouse insert (whole batches, never single rows). Classifier busy = "
                     "time the worker's classify thread spent decoding and in predict_batch, "
                     "over the burst's wall time: below 100% it waited for input.")
    per = Table("Worker CPU by thread during the burst (CPU-s/1000 docs)",
                ["backend", "workers", "classifier threads", "thread", "CPU-s/1000 docs",
                 "share of worker CPU"])
    for r in results:
        total = sum(r.threads.values())
        for name, cpu in sorted(r.threads.items(), key=lambda kv: -kv[1]):
            if cpu >= 0.005:
                per.add(r.backend, r.workers, r.classifier_threads, name, cpu,
                        cpu / total if total else None)
    per.notes.append("finsentry-classify = decode + predict_batch (its own lane of each "
                     "batch); finsentry-lane_N = the classifier's other lanes (models.parallel); "
                     "native = threads Python did not start (ONNX Runtime's intra-op pool with "
                     "parallel=operators, the tokenizer's, chdb's); MainThread = Faust's event "
                     "loop (agent, inserts' hand-off, sends); the thread Faust names after its "
                     "consumer fetches from Kafka. Read from /proc per thread, +-0.5 s at "
                     "either end of the burst.")
    split = Table("Where one worker's burst time went (seconds, all bursts)",
                  ["backend", "classifier threads", "burst wall", "bare loop, same documents",
                   "model calls", "model calls / bare", "decode + records",
                   "classify thread waiting", "ratio to bare"])
    for r in results:
        sp = r.split
        if sp:
            split.add(r.backend, r.classifier_threads, sp["wall"], sp["bare"], sp["model"],
                      sp["model"] / sp["bare"], sp["records"], sp["waiting"],
                      sp["bare"] / sp["wall"])
    split.notes.append("The burst's wall clock is the worker's classify thread inside "
                       "predict_batch (model calls: the same call the bare loop makes, on the "
                       "same documents; over 1.00 it ran slower beside the plumbing, which "
                       "shares its cores), decoding the raw messages and building the scored "
                       "records on that thread, and that thread waiting: for the first batch "
                       "to arrive (fetch), between batches, and for the last insert to be "
                       "acknowledged. 'ratio to bare' here is over all bursts together.")
    return [thr, lat, per, split]
