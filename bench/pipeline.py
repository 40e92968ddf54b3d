"""End-to-end benchmark (not a test): does the classifier set the pace, or the plumbing?

    .venv/bin/python bench/pipeline.py [--documents 2000] [--workers 1,2]
                                       [--backends chdb,server] [--smoke]

Measured in one run, on one machine, with one model, batch size and input (the demo's sample
stream, keyed by document id so partitions fill evenly):
1. bare: the classifier's documents/s, a loop over `predict_batch` at `worker.batch_size`;
2. end to end: documents/s from the first produce to the raw topic until every document is
   queryable in scored_documents, with 1 and 2 real worker processes (`run_worker`, the shipped
   classifier, ScoredSink), on embedded chdb and on a ClickHouse server (Debian's 18.16 started
   here via .ci/clickhouse.sh unless --clickhouse names one), and the ratio to (1);
3. produce -> queryable latency p50/p99 with input paced at half the measured capacity;
4. peak RSS of a worker with its models loaded; ClickHouse rows per insert;
5. CPU seconds per 1000 documents for the workers, the broker, the ClickHouse server and the
   bench itself (producer + poller), so results on a loaded machine can still be compared;
6. the ceiling: the bare loop beside the services alone, no worker (bench/_ceiling.py);
7. all of it at each classifier thread setting (`--threads default,spare`: one per core, and
   cores - 1, which leaves a core to the plumbing; `spare` runs one worker);
8. where one worker's burst time went: its classify thread in predict_batch (against the bare
   loop on the same documents), decoding and building records, and waiting.
Each configuration runs `--bursts` timed bursts (3), each between two bare passes, and shows
the median burst with every burst's ratio beside it: one pass moves by +-15% on a noisy VM.
Each configuration gets a fresh noida-db with a data folder of its own, and its topics are
emptied after the warm-up and each burst, because noida-db's CPU per record grows with what its
log holds (bench/_burst.trim_topics).
The timed burst is produced as one record batch per partition (bench/_burst.py).
chdb allows one process per data path, so chdb runs with one worker only. A document is
queryable when the insert holding it was acknowledged (a MergeTree insert is synchronous; every
document is then checked to be stored), or with `--visibility poll` when a 0.1 s poll first
sees it (see bench/_pipeline_parts.py). The load average is recorded with every row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _bare import Bare, thread_settings
from _burst import BurstProducer, burst_records, trim_topics
from _ceiling import run_load, services_alone
from _pipeline_parts import (
    Burst,
    RunResult,
    VisibilityPoller,
    combine,
    cpu_seconds,
    percentile,
    run_child,
    tables,
)
from _results import PROJECT_ROOT, emit

SMOKE_DOCS = 96


@dataclass
class Env:
    """Services shared by every configuration: one broker, one ClickHouse server."""

    bootstrap: str
    ch_host: str | None
    ch_port: int
    broker_pid: int | None = None
    ch_pid: int | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fs-bench-")))


def make_settings(env: Env, backend: str, run_dir: Path, args: argparse.Namespace,
                  threads: int | None) -> Any:
    from finsentry.config import Settings

    tag = uuid.uuid4().hex[:8]
    ch: dict[str, Any] = {"database": f"bench_{tag}", "retry_attempts": 8}
    if backend == "chdb":
        ch["chdb_path"] = str(run_dir / "chdb")
    else:
        ch.update(host=env.ch_host, port=env.ch_port)
    models: dict[str, Any] = {} if threads is None else {"threads": threads}
    return Settings.model_validate({
        "kafka": {"bootstrap_servers": env.bootstrap, "raw_topic": f"b{tag}.raw",
                  "scored_topic": f"b{tag}.scored", "dead_letter_topic": f"b{tag}.dlq",
                  "partitions": args.partitions},
        "clickhouse": ch, "models": models,
        "worker": {"app_id": f"bench-{tag}", "run_id": f"bench-{tag}",
                   "batch_size": args.batch_size, "batch_max_wait_s": args.batch_max_wait,
                   "pipeline_depth": args.pipeline_depth, **worker_overrides(args)},
    })


def worker_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The worker settings given on the command line (the rest stay at their defaults)."""
    given = {"insert_linger_s": args.insert_linger, "insert_max_rows": args.insert_max_rows}
    return {k: v for k, v in given.items() if v is not None}


class Run:
    """One configuration: topics, store, W worker children, the three phases."""

    def __init__(self, env: Env, backend: str, workers: int, args: argparse.Namespace,
                 threads: int | None) -> None:
        self.env, self.backend, self.n_workers, self.args = env, backend, workers, args
        self.dir = env.tmp / f"{backend}-{workers}-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.settings = make_settings(env, backend, self.dir, args, threads)
        self.visible: dict[str, float] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.poller: VisibilityPoller | None = None
        self.store: Any = None
        self.producer: Any = None
        self.burst_producer: BurstProducer | None = None
        self.acked = args.visibility == "ack"
        n_files = workers if self.acked else 1
        self.vis_files = [self.dir / f"visible-{i}.tsv" for i in range(n_files)]
        self._vis_offsets = [0] * n_files
        self.sent: set[str] = set()  # every document id produced in this run

    # -- set-up / tear-down ---------------------------------------------------------------------
    def start(self) -> None:
        from kafka import KafkaProducer

        from finsentry.kafka_admin import ensure_topics
        from finsentry.store import migrate, open_store

        ensure_topics(self.settings.kafka)
        if self.backend == "server":
            self.store = open_store(self.settings.clickhouse)
            migrate(self.store)
        if self.backend == "server" and not self.acked:
            self.poller = VisibilityPoller(self.store, self.settings.worker.run_id,
                                           self.visible.__setitem__)
            self.poller.start()
        data = self.child_settings()
        for i in range(self.n_workers):
            spec = {"settings": data, "progress": str(self.dir / f"progress-{i}.json"),
                    "stop": str(self.dir / "stop"),
                    "acked": self.acked,
                    "visibility": str(self.vis_files[i if self.acked else 0])
                    if self.acked or self.backend == "chdb" else None}
            (self.dir / f"spec-{i}.json").write_text(json.dumps(spec))
            log = (self.dir / f"worker-{i}.log").open("ab")
            env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
            self.procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child",
                 str(self.dir / f"spec-{i}.json")], stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=PROJECT_ROOT))
            log.close()
        self.producer = KafkaProducer(bootstrap_servers=self.settings.kafka.bootstrap_servers,
                                      acks="all", linger_ms=5)
        self.burst_producer = BurstProducer(self.settings.kafka.bootstrap_servers)

    def child_settings(self) -> dict[str, Any]:
        """The run's settings as JSON for a child process (the ClickHouse password kept)."""
        data: dict[str, Any] = self.settings.model_dump(mode="json")
        data["clickhouse"]["password"] = self.settings.clickhouse.password.get_secret_value()
        data["alerts"]["smtp_password"] = ""
        return data

    def trim(self, result: RunResult) -> None:
        """Empty the run's topics once all sent was stored (see `trim_topics`)."""
        k = self.settings.kafka
        result.trimmed += trim_topics(k.bootstrap_servers, k.raw_topic.removesuffix("raw"))

    def close_producers(self) -> None:
        if self.producer is not None:
            self.producer.close()
            self.producer = None
        if self.burst_producer is not None:
            self.burst_producer.close()
            self.burst_producer = None

    def bytes_per_row(self) -> float | None:
        if self.store is None:
            return None
        rows = self.store.query(
            "SELECT sum(rows) AS n, sum(bytes_on_disk) AS b FROM system.parts WHERE active "
            "AND database = %(db)s AND table = 'scored_documents'",
            {"db": self.settings.clickhouse.database})
        return int(rows[0]["b"]) / int(rows[0]["n"]) if rows and rows[0]["n"] else None

    def stop(self) -> list[dict[str, Any]]:
        (self.dir / "stop").touch()
        finals: list[dict[str, Any]] = []
        for i, proc in enumerate(self.procs):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            finals.append(self.progress(i))
        if self.poller is not None:
            self.poller.stop()
        self.close_producers()
        if self.store is not None:
            self.store.execute(f"DROP DATABASE IF EXISTS {self.settings.clickhouse.database}")
            self.store.close()
            self.store = None
        return finals

    def kill(self) -> None:
        """After a failure: end the children and release what the run holds."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if self.poller is not None:
            self.poller.stop()
        self.close_producers()
        if self.store is not None:
            self.store.close()
            self.store = None

    # -- observation ----------------------------------------------------------------------------
    def progress(self, i: int) -> dict[str, Any]:
        try:
            return dict(json.loads((self.dir / f"progress-{i}.json").read_text()))
        except (OSError, ValueError):
            return {}

    def refresh(self) -> None:
        for k, path in enumerate(self.vis_files):
            if not path.exists():
                continue
            with path.open(encoding="utf-8") as f:
                f.seek(self._vis_offsets[k])
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            self._vis_offsets[k] += len(complete.encode("utf-8"))
            for line in complete.splitlines():
                doc_id, t = line.split("\t")
                self.visible.setdefault(doc_id, float(t))

    def thread_cpu(self) -> dict[str, float]:
        """Worker CPU-s by thread name, summed over the workers (from their progress files)."""
        out: dict[str, float] = {}
        for i in range(self.n_workers):
            for name, cpu in self.progress(i).get("threads", {}).items():
                out[name] = out.get(name, 0.0) + cpu
        return out

    def wait_visible(self, ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.refresh()
            if all(i in self.visible for i in ids):
                return True
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    tail = (self.dir / f"worker-{i}.log").read_text()[-3000:]
                    raise RuntimeError(f"worker {i} exited ({proc.returncode}):\n{tail}")
            time.sleep(0.05)
        return False

    def cpu_snapshot(self) -> dict[str, float]:
        snap = {"workers": sum(cpu_seconds(p.pid) for p in self.procs),
                "bench": time.process_time()}
        if self.env.broker_pid:
            snap["broker"] = cpu_seconds(self.env.broker_pid)
        if self.backend == "server" and self.env.ch_pid:
            snap["clickhouse"] = cpu_seconds(self.env.ch_pid)
        return snap

    def model_seconds(self) -> tuple[float, float]:
        """The classify threads' busy seconds, and how many of them in predict_batch."""
        got = [self.progress(i) for i in range(self.n_workers)]
        return (sum(float(p.get("model_s", 0.0)) for p in got),
                sum(float(p.get("predict_s", 0.0)) for p in got))

    def totals(self) -> tuple[int, int]:
        inserts = rows = 0
        for i in range(self.n_workers):
            p = self.progress(i)
            inserts += int(p.get("inserts", 0))
            rows += int(p.get("rows", 0))
        return inserts, rows

    # -- phases ---------------------------------------------------------------------------------
    def idle_cpu(self, seconds: float) -> float:
        """CPU of the workers and the broker with no input, % of one core (a spinning consumer
        shows here, and takes that CPU from the classifier)."""
        time.sleep(min(1.0, seconds))  # let the warm-up's commits and inserts settle
        a, t0 = self.cpu_snapshot(), time.monotonic()
        time.sleep(seconds)
        b, took = self.cpu_snapshot(), time.monotonic() - t0
        return 100 * sum(b[k] - a[k] for k in ("workers", "broker") if k in a) / took

    def send(self, docs: list[Any]) -> None:
        """Produce `docs` one by one (warm-up rounds; the timed burst uses `burst_records`)."""
        topic = self.settings.kafka.raw_topic
        self.sent.update(d.id for d in docs)
        for d in docs:
            self.producer.send(topic, key=d.id.encode(), value=d.to_json())
        self.producer.flush()

    def warm_up(self, docs: list[Any]) -> None:
        """Rounds of documents until every worker has processed some (joined, warm)."""
        per_round = max(8, len(docs) // 4)
        for start in range(0, len(docs), per_round):
            chunk = docs[start:start + per_round]
            self.send(chunk)
            if not self.wait_visible([d.id for d in chunk], self.args.timeout):
                raise RuntimeError(f"{self.backend}: warm-up documents never became queryable "
                                   f"(logs in {self.dir})")
            if all(self.progress(i).get("messages", 0) > 0 for i in range(self.n_workers)):
                return
        raise RuntimeError(f"{self.backend}: a worker never got a partition (logs in {self.dir})")

    def profile(self) -> list[subprocess.Popen[bytes]]:
        """py-spy on every worker for the burst (--profile): raw stacks, one file per worker."""
        if not self.args.profile:
            return []
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.args.profile.mkdir(parents=True, exist_ok=True)
        return [subprocess.Popen(
            [spy, "record", "-p", str(p.pid), "-f", "raw", "-r", "200", "--nonblocking",
             "-o", str(self.args.profile / f"{self.backend}-{self.n_workers}-w{i}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, p in enumerate(self.procs)]

    def burst(self, docs: list[Any]) -> Burst:
        spies = self.profile()
        before, ins0, th0 = self.cpu_snapshot(), self.totals(), self.thread_cpu()
        busy0 = self.model_seconds()
        records = burst_records(docs, self.settings.kafka.partitions)
        assert self.burst_producer is not None
        ids = [d.id for d in docs]
        self.sent.update(ids)
        t0 = time.time()
        self.burst_producer.send(self.settings.kafka.raw_topic, records)
        if not self.wait_visible(ids, self.args.timeout):
            missing = sum(1 for i in ids if i not in self.visible)
            raise RuntimeError(f"{self.backend}/{self.n_workers}: {missing} documents not "
                               f"queryable after {self.args.timeout}s (logs in {self.dir})")
        t1 = max(self.visible[i] for i in ids)
        after, ins1 = self.cpu_snapshot(), self.totals()
        time.sleep(0.6)  # the next progress write (every 0.5 s) holds the threads' CPU
        th1, busy1 = self.thread_cpu(), self.model_seconds()
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        return Burst(docs=len(docs), wall=t1 - t0,
                     cpu={k: after[k] - before[k] for k in after},
                     threads={k: th1[k] - th0.get(k, 0.0) for k in th1},
                     classify_s=busy1[0] - busy0[0], predict_s=busy1[1] - busy0[1],
                     inserts=ins1[0] - ins0[0], rows=ins1[1] - ins0[1])

    def paced(self, docs: list[Any], rate: float, result: RunResult) -> None:
        ins0 = self.totals()
        sent: dict[str, float] = {}
        topic = self.settings.kafka.raw_topic
        start = time.time()
        for k, d in enumerate(docs):
            due = start + k / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            sent[d.id] = time.time()
            self.sent.add(d.id)
            self.producer.send(topic, key=d.id.encode(), value=d.to_json())
            self.producer.flush()
        if not self.wait_visible(list(sent), self.args.timeout):
            raise RuntimeError(f"{self.backend}: paced documents not all queryable")
        lat = [self.visible[i] - t for i, t in sent.items()]
        ins1 = self.totals()
        result.paced_rate = rate
        result.latency_p50, result.latency_p99 = percentile(lat, 50), percentile(lat, 99)
        inserts = ins1[0] - ins0[0]
        result.rows_per_insert_paced = (ins1[1] - ins0[1]) / inserts if inserts else None


def measure(env: Env, backend: str, workers: int, docs: dict[str, list[Any]],
            args: argparse.Namespace, bare: Bare) -> RunResult:
    from finsentry.broker import EmbeddedBroker

    result = RunResult(backend, workers, classifier_threads=bare.label)
    broker = None
    if not args.bootstrap:  # a fresh broker per configuration (see start_services)
        broker = EmbeddedBroker(env.tmp / f"broker-{backend}-{workers}-{bare.label}").start()
        env.bootstrap, env.broker_pid = broker.bootstrap, broker.pid
    run = Run(env, backend, workers, args, bare.threads)
    load0 = os.getloadavg()[0]
    try:
        run.start()
        run.warm_up(docs["warm"])
        run.trim(result)
        result.idle_cpu_pct = run.idle_cpu(args.idle_seconds)
        passes, bursts = [bare.run()], []
        for batch in docs["bursts"]:  # bare, burst, bare, burst, ..., bare
            bursts.append(run.burst(batch))
            run.trim(result)
            passes.append(bare.run())
        mid = combine(result, bursts, passes)
        assert result.docs_per_s is not None
        if not args.no_ceiling:
            rate, result.ceiling_cpu = services_alone(
                run, docs["bursts"][mid], bare, round(result.rows_per_insert or args.batch_size),
                bursts[mid].wall)
            result.ceiling = rate / result.bare[0]
            run.trim(result)
        rate = max(1.0, result.docs_per_s / 2)
        n = max(10, min(len(docs["paced"]), int(rate * args.paced_seconds)))
        run.paced(docs["paced"][:n], rate, result)
        result.bytes_per_row = run.bytes_per_row()
        finals = run.stop()
        sent = len(run.sent)
        stored = max((int(f.get("stored_ids", -1)) for f in finals), default=-1)
        if stored != sent:  # every document counted as queryable must really be stored
            raise RuntimeError(f"{backend}/{workers}: the store holds {stored} documents of the "
                               f"{sent} sent (logs in {run.dir})")
        result.peak_rss_mb = max((f.get("peak_rss_mb", 0.0) for f in finals), default=None)
        result.load = (load0, os.getloadavg()[0])
    finally:
        run.kill()
        if broker is not None:
            broker.stop()
    return result


def start_services(args: argparse.Namespace, stack: list[Any]) -> Env:
    """The ClickHouse server shared by every configuration. The broker is not shared: each
    configuration starts a fresh noida-db (in `measure`), because noida-db's CPU per document
    grows with the topics it holds (0.12 -> 0.55 CPU-s per 1000 documents for the second
    configuration of a run, whichever came first), which charged later rows for earlier ones."""
    env = Env(bootstrap=args.bootstrap or "", ch_host=None, ch_port=0)
    stack.append(lambda: shutil.rmtree(env.tmp, ignore_errors=True))
    if "server" in args.backends:
        if args.clickhouse:
            host, _, port = args.clickhouse.rpartition(":")
            env.ch_host, env.ch_port = host or "127.0.0.1", int(port)
        else:
            from finsentry.broker import free_port

            ch_dir, port = env.tmp / "clickhouse", free_port()
            script = str(PROJECT_ROOT / ".ci" / "clickhouse.sh")
            subprocess.run(["bash", script, "start", str(ch_dir), str(port)], check=True,
                           capture_output=True, timeout=90)
            stack.append(lambda: subprocess.run(["bash", script, "stop", str(ch_dir)],
                                                check=False, capture_output=True, timeout=60))
            env.ch_host, env.ch_port = "127.0.0.1", port
            env.ch_pid = int((ch_dir / "clickhouse.pid").read_text())
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--documents", type=int, default=2000, help="documents in each timed burst")
    ap.add_argument("--bursts", type=int, default=3,
                    help="timed bursts per configuration, each between two bare passes; the "
                         "row shows the median burst, the range column all of them")
    ap.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2")
    ap.add_argument("--backends", default="chdb,server")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batch-max-wait", type=float, default=1.0)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--pipeline-depth", type=int, default=2, help="worker.pipeline_depth")
    ap.add_argument("--insert-linger", type=float, default=None, help="worker.insert_linger_s")
    ap.add_argument("--insert-max-rows", type=int, default=None, help="worker.insert_max_rows")
    ap.add_argument("--threads", default="default,spare",
                    help="classifier thread settings to measure, comma-separated: 'default' "
                         "(the runtime's, one per core), 'spare' (cores - 1: a core left to "
                         "the plumbing; one worker only) or a number")
    ap.add_argument("--paced-seconds", type=float, default=15.0)
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--bootstrap", help="use this broker instead of starting noida-db")
    ap.add_argument("--clickhouse", help="host:port of a running server instead of 18.16 here")
    ap.add_argument("--results", type=Path, default=None, help="results folder")
    ap.add_argument("--visibility", choices=["ack", "poll"], default="ack",
                    help="queryable = insert acknowledged (default) or first seen by a 0.1 s poll")
    ap.add_argument("--profile", type=Path, default=None,
                    help="py-spy each worker during the burst; raw stacks into this folder")
    ap.add_argument("--smoke", action="store_true", help=f"{SMOKE_DOCS} documents, 1 worker")
    ap.add_argument("--no-ceiling", action="store_true",
                    help="skip the bare loop beside the services alone (bench/_ceiling.py)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_child(args.child)
        return
    if args.load:
        run_load(args.load)
        return
    if args.smoke:
        args.documents, args.workers, args.paced_seconds = SMOKE_DOCS, "1", 2.0
        args.bursts = 2
        args.idle_seconds = 1.0
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    workers = [int(w) for w in args.workers.split(",")]

    from finsentry.streams.sample import generate

    n = args.documents
    n_warm = max(2 * args.batch_size, 4 * args.partitions)
    sample = generate(n_warm + (args.bursts + 1) * n, seed=11).documents
    burst_docs = [sample[n_warm + i * n:n_warm + (i + 1) * n] for i in range(args.bursts)]
    docs = {"warm": sample[:n_warm], "bursts": burst_docs,
            "paced": sample[n_warm + args.bursts * n:]}
    texts = [d.classify_text for d in burst_docs[0]]
    stack: list[Any] = []
    results: list[RunResult] = []
    bares: list[Bare] = []
    try:
        env = start_services(args, stack)
        for label, threads in thread_settings(args.threads):
            bare = Bare(texts, args.batch_size, threads, label)
            bare_rate, bare_cpu = bare.run()
            print(f"bare classifier, threads {label}: {bare_rate:.1f} docs/s, {bare_cpu:.2f} "
                  f"CPU-s/1000 docs ({bare.what})", flush=True)
            for backend in args.backends:
                for w in workers:
                    if threads is not None and label == "spare" and w > 1:
                        continue  # one core left to the plumbing is a one-worker setting
                    if backend == "chdb" and w > 1:
                        results.append(RunResult(backend, w, classifier_threads=label,
                                                 note="n/a: one process per chdb path"))
                        continue
                    r = measure(env, backend, w, docs, args, bare)
                    print(f"{backend} x{w} threads {label}: {r.docs_per_s:.1f} docs/s, "
                          f"p99 {r.latency_p99:.2f} s", flush=True)
                    results.append(r)
            bare.release()
            bares.append(bare)
    finally:
        for undo in reversed(stack):
            undo()
    first = bares[0]
    bare_rate, bare_cpu = first.mean()
    emit("pipeline", tables(results, {b.label: b.mean() for b in bares}, first.what,
                            args.pipeline_depth),
         out_dir=args.results,
         meta={"documents": n, "batch_size": args.batch_size, "model": first.what,
               "pipeline_depth": args.pipeline_depth,
               "bare_runs_docs_per_s": [r for r, _ in first.runs],
               "bare_runs_cpu_s_per_1000": [c for _, c in first.runs],
               "visibility": args.visibility,
               "threads": first.label, "bare_docs_per_s": bare_rate,
               "bare_cpu_s_per_1000": bare_cpu, "bench_rss_after_model_load_mb": first.rss,
               "bare_by_threads": {b.label: {"threads": b.threads, "runs": b.runs}
                                   for b in bares},
               "bytes_per_row": next((r.bytes_per_row for r in results if r.bytes_per_row),
                                     None),
               "runs": [r.__dict__ for r in results]})


if __name__ == "__main__":
    main()
