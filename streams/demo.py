"""`finsentry demo`: the whole pipeline on one machine with no external service.

Embedded broker (noida-db child process) + embedded ClickHouse (chdb) + the real worker and
classifiers, fed a generated sample stream (with a negative burst and two malformed messages);
prints a summary and writes the dashboards' preview (finsentry.dashboards.preview) as its report.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finsentry.config import Settings
from finsentry.errors import StreamError
from finsentry.streams.sample import SampleStream, generate

log = logging.getLogger(__name__)
MALFORMED: list[bytes] = [b"{not json", b'{"id": "x", "text": ""}']


@dataclass
class DemoSummary:
    run_id: str
    produced: int
    stored: int
    dead_lettered: int
    seconds: float
    sentiments: dict[str, int]
    topics: dict[str, int]
    model: str
    report: Path
    burst_ticker: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def burst_line(self) -> str:
        neg, total = self.extra.get("burst_negative", 0), self.extra.get("burst_total", 0)
        return (f"injected burst: {neg} of {total} documents about {self.burst_ticker} "
                "in the burst window scored negative")

    @property
    def docs_per_second(self) -> float:
        return self.stored / self.seconds if self.seconds > 0 else 0.0

    def render(self) -> str:
        lines = [
            f"run {self.run_id}: {self.produced} messages produced, {self.stored} documents "
            f"stored, {self.dead_lettered} dead-lettered",
            f"throughput: {self.docs_per_second:.1f} documents/s "
            f"({self.seconds:.1f} s from first to last batch)",
            f"models: {self.model}",
            self.burst_line,
            *([str(self.extra["alert"])] if "alert" in self.extra else []),
            "sentiment: " + ", ".join(f"{k} {v}" for k, v in self.sentiments.items()),
            "topics:",
            *[f"  {v:5d}  {k or '(none)'}" for k, v in self.topics.items()],
            f"report: {self.report}",
        ]
        return "\n".join(lines)


def run_demo(settings: Settings, out_dir: Path, documents: int = 600, seed: int = 7,
             progress: bool = True) -> DemoSummary:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    run_id = f"demo-{stamp}"
    broker_dir = out_dir / f"broker-{stamp}"
    sample = generate(documents, seed=seed)
    try:
        return _run(settings, out_dir, sample, run_id, stamp, broker_dir, progress)
    finally:  # Ctrl-C included: the broker child is stopped by the context manager
        shutil.rmtree(broker_dir, ignore_errors=True)


def _run(settings: Settings, out_dir: Path, sample: SampleStream, run_id: str, stamp: str,
         broker_dir: Path, progress: bool) -> DemoSummary:
    from finsentry.broker import EmbeddedBroker
    from finsentry.kafka_admin import ensure_topics
    from finsentry.models import load_classifier
    from finsentry.store import ScoredSink, migrate, open_store
    from finsentry.streams.worker import StopPolicy, run_worker

    with EmbeddedBroker(broker_dir) as broker:
        settings = Settings.model_validate({
            **settings.model_dump(),
            "kafka": {**settings.kafka.model_dump(), "bootstrap_servers": broker.bootstrap},
            "clickhouse": {**settings.clickhouse.model_dump(), "host": None,
                           "chdb_path": out_dir / "chdb"},
            "worker": {**settings.worker.model_dump(), "run_id": run_id,
                       "app_id": f"finsentry-demo-{stamp}",
                       "data_dir": broker_dir / "faust"},  # removed with broker_dir
        })
        ensure_topics(settings.kafka)
        produced = _produce(settings, sample)
        classifier = load_classifier(settings.models)
        store = open_store(settings.clickhouse)
        try:
            migrate(store)
            bar = _progress_bar(produced, progress)
            stats = run_worker(settings, classifier, ScoredSink(store),
                               StopPolicy(expect_messages=produced, max_seconds=1800),
                               on_progress=lambda s: bar.update(s.messages - bar.n))
            bar.close()
            if stats.fatal:
                raise StreamError(f"demo worker failed: {stats.fatal}")
            return _summarise(store, settings, sample, produced, stats.rejected,
                              stats.busy_seconds, out_dir)
        finally:
            store.close()


def _produce(settings: Settings, sample: SampleStream) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all",
                             retries=5, linger_ms=20)
    try:
        futures = [
            producer.send(settings.kafka.raw_topic, key=(d.primary_ticker or d.source).encode(),
                          value=d.to_json())
            for d in sample.documents
        ]
        futures += [producer.send(settings.kafka.raw_topic, key=b"malformed", value=m)
                    for m in MALFORMED]
        producer.flush()
        for fut in futures:
            fut.get(timeout=30)  # surface delivery errors
    finally:
        producer.close()
    return len(sample.documents) + len(MALFORMED)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="scoring", unit="doc", disable=not enabled)


def _summarise(store: Any, settings: Settings, sample: SampleStream, produced: int,
               rejected: int, seconds: float, out_dir: Path) -> DemoSummary:
    from finsentry.store import count_documents, sentiment_counts, topic_counts

    run_id = settings.worker.run_id
    report = out_dir / f"report-{run_id}.html"
    run = {"run": run_id}
    models = store.query("SELECT DISTINCT model_name, model_version FROM scored_documents FINAL "
                         "WHERE run_id = %(run)s ORDER BY model_name", run)
    burst = store.query(
        "SELECT countIf(sentiment = 'negative') AS neg, count() AS n FROM scored_documents FINAL "
        "WHERE run_id = %(run)s AND primary_ticker = %(ticker)s "
        "AND published_at >= %(start)s AND published_at <= %(end)s",
        {**run, "ticker": sample.burst_ticker, "start": sample.burst_start,
         "end": sample.burst_end})[0]
    summary = DemoSummary(
        run_id=run_id, produced=produced, stored=count_documents(store, run_id),
        dead_lettered=rejected, seconds=seconds,
        sentiments=sentiment_counts(store, run_id), topics=topic_counts(store, run_id),
        model="; ".join(f"{m['model_name']} ({m['model_version']})" for m in models),
        report=report, burst_ticker=sample.burst_ticker,
        extra={"burst_negative": int(burst["neg"]), "burst_total": int(burst["n"])},
    )
    from finsentry.alerts.demo import evaluate_demo

    summary.extra["alert"] = evaluate_demo(
        store, settings, run_id, sample.documents[0].published_at,
        sample.documents[-1].published_at, sample.burst_ticker, sample.burst_start,
        sample.burst_end, out_dir)
    _report(store, run_id, sample, out_dir, report)  # after the alerts: its panels show them
    return summary


def _report(store: Any, run_id: str, sample: SampleStream, out_dir: Path, report: Path) -> None:
    """The report is the dashboards' preview (what Grafana shows), over the sample's time span."""
    from datetime import timedelta

    from finsentry.dashboards.preview import render_preview
    from finsentry.store.metrics import writer_for

    writer_for(store).flush()  # the workers' batch rows, for the pipeline-health page
    times = [d.published_at for d in sample.documents]
    now = datetime.now(UTC)
    render_preview(store, run_id, min(times), max(times) + timedelta(minutes=1),
                   out_dir / f"report-{run_id}", ticker=sample.burst_ticker,
                   copies=(report, out_dir / "report.html"),
                   ranges={"finsentry-health": (now - timedelta(minutes=30), now)})
