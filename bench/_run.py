"""One configuration of bench/pipeline.py: its services, its worker processes, its phases.

`Run` starts the workers as children of pipeline.py (`--child`), warms them up, and drives the
timed burst, the paced phase and the observations (visibility, CPU by process and by thread);
`measure` in pipeline.py strings the phases together.
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

from _burst import BurstProducer, burst_records, trim_topics
from _pipeline_parts import Burst, RunResult, VisibilityPoller, cpu_seconds, percentile
from _results import PROJECT_ROOT

PIPELINE = Path(__file__).resolve().with_name("pipeline.py")


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
                   "data_dir": str(run_dir / "faust"),
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
                [sys.executable, str(PIPELINE), "--child",
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
