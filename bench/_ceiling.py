"""The ceiling this machine allows the pipeline: the bare loop beside the services alone.

End to end, the classifier shares the machine with more than the worker's own plumbing: the
bench's producer (standing in for the crawlers) sends the burst, the broker stores it, and on
the server backend the ClickHouse server takes the inserts. None of that is the worker's doing,
and on a deployment each has machines of its own. To tell that share from the worker's, the
benchmark runs the bare loop once more while a separate process (`--load SPEC`, so it shares no
interpreter lock with the loop) replays exactly that traffic with no worker: the same payloads
produced in one burst to a scratch topic on the same broker and, on the server backend, the
same number of scored rows inserted in inserts the size the burst used, spread over the loop's
run. bare-beside-services / bare-alongside is the ratio a worker that cost nothing would reach
here; the worker's own share of the gap is what lies between that and the measured ratio.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def run_load(spec_path: Path) -> None:
    """Body of the load child: prepare everything, wait for the go file, then produce the
    burst and (server backend) insert the rows; write its own CPU-s and wall time."""
    from _burst import BurstProducer, burst_records

    from finsentry.config import Settings
    from finsentry.models.base import Prediction
    from finsentry.records import Document
    from finsentry.store import ScoredSink, open_store
    from finsentry.streams.processor import to_scored

    spec = json.loads(spec_path.read_text())
    settings = Settings.model_validate(spec["settings"])
    docs = [Document.model_validate_json(raw) for raw in spec["documents"]]
    records = burst_records(docs, settings.kafka.partitions)
    producer = BurstProducer(settings.kafka.bootstrap_servers)
    sink = None
    scored: list[Any] = []
    if spec["insert_rows"]:
        sink = ScoredSink(open_store(settings.clickhouse))
        run_id = f"{settings.worker.run_id}-ceiling"
        scored = [to_scored(d, Prediction(**p), run_id)
                  for d, p in zip(docs, spec["predictions"], strict=True)]
    Path(spec["ready"]).touch()
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(0.002)
    t0, c0 = time.monotonic(), time.process_time()
    producer.send(spec["topic"], records)  # as the burst was produced (bench/_burst.py)
    if sink is not None:
        size = max(1, int(spec["insert_rows"]))
        starts = list(range(0, len(scored), size))
        for k, start in enumerate(starts):  # spread over the loop's run, as the worker's are
            time.sleep(max(0.0, t0 + spec["spread_s"] * (k + 1) / len(starts) - time.monotonic()))
            sink.write(scored[start:start + size])
    Path(spec["done"]).write_text(json.dumps({"cpu_s": time.process_time() - c0}))
    producer.close()


def services_alone(run: Any, docs: list[Any], bare: Any, insert_rows: int | None,
                   spread_s: float) -> tuple[float, dict[str, float]]:
    """The bare loop's documents/s while the load child replays the services' share of the
    burst; returns it with the CPU-s per 1000 documents of the load child, broker and server."""
    from finsentry.kafka_admin import TopicSpec, ensure_topics

    k = run.settings.kafka
    topic = f"{k.raw_topic}.ceiling"
    ensure_topics(k, [TopicSpec(topic, k.partitions, k.replication_factor)])
    files = {name: run.dir / f"ceiling-{name}" for name in ("ready", "go", "done")}
    spec = {"settings": run.child_settings(), "topic": topic, "spread_s": spread_s,
            "documents": [d.model_dump_json() for d in docs],
            "predictions": [dataclasses.asdict(p) for p in bare.predictions],
            "insert_rows": insert_rows if run.backend == "server" else None,
            **{name: str(path) for name, path in files.items()}}
    spec_path = run.dir / "ceiling-spec.json"
    spec_path.write_text(json.dumps(spec))
    log = (run.dir / "ceiling.log").open("ab")
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("pipeline.py")),
                              "--load", str(spec_path)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        deadline = time.monotonic() + 120
        while not files["ready"].exists():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the ceiling's load process failed (log: {run.dir})")
            time.sleep(0.05)
        time.sleep(0.5)  # its start-up (imports, connections) settles before the clock
        before = run.cpu_snapshot()
        files["go"].touch()
        rate, _ = bare.run(record=False)
        child.wait(120)
        done = json.loads(files["done"].read_text())
        after = run.cpu_snapshot()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    per = 1000 / len(docs)
    cpu = {"load": done["cpu_s"] * per}
    cpu.update({k: (after[k] - before[k]) * per for k in ("broker", "clickhouse") if k in after})
    return rate, cpu

