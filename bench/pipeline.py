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
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from _bare import Bare, thread_settings
from _ceiling import run_load, services_alone
from _pipeline_parts import (
    RunResult,
    combine,
    run_child,
    tables,
)
from _results import PROJECT_ROOT, emit
from _run import Env, Run

SMOKE_DOCS = 96


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
    configuration starts a fresh noida-db in a folder of its own (in `measure`), because
    noida-db's CPU per record grows with what its log holds (0.12 -> 0.55 CPU-s per 1000
    documents for the second configuration of a run, whichever came first), which charged
    later rows for earlier ones; within a configuration `Run.trim` empties the topics."""
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
