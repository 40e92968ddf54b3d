"""`finsentry topics`, `finsentry worker`, `finsentry demo`."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from finsentry.cli import (
    apply_overrides,
    log_level_option,
    pass_settings,
    setting_option,
    setup_logging,
)
from finsentry.config import Settings
from finsentry.errors import StreamError


@click.group("topics")
def topics_group() -> None:
    """Kafka topics (pre-created with explicit partition counts)."""


@topics_group.command("create")
@setting_option("kafka", "bootstrap_servers", "--bootstrap-servers")
@setting_option("kafka", "partitions", "--partitions", type=int)
@pass_settings
def topics_create(settings: Settings, bootstrap_servers: str | None,
                  partitions: int | None) -> None:
    """Create the raw, scored and dead-letter topics if missing (idempotent)."""
    from finsentry.kafka_admin import ensure_topics, pipeline_topics

    settings = apply_overrides(settings, "kafka", bootstrap_servers=bootstrap_servers,
                               partitions=partitions)
    created = set(ensure_topics(settings.kafka))
    for spec in pipeline_topics(settings.kafka):
        state = "created" if spec.name in created else "exists"
        click.echo(f"{spec.name}\t{spec.partitions} partitions\t{state}")


@click.command("worker")
@setting_option("worker", "batch_size", "--batch-size", type=int)
@setting_option("worker", "batch_max_wait_s", "--batch-max-wait", type=float)
@setting_option("worker", "run_id", "--run-id")
@setting_option("worker", "app_id", "--app-id")
@click.option("--max-seconds", type=float, help="Stop after this many seconds.")
@click.option("--idle-exit", type=float, help="Stop after this many seconds without messages.")
@click.option("--expect", type=int, help="Stop after processing this many messages.")
@log_level_option
@click.option("--health-port", type=click.IntRange(0, 65535), default=None,
              help="Overrides health.worker_port (0 = any free port).")
@pass_settings
def worker_command(settings: Settings, batch_size: int | None, batch_max_wait_s: float | None,
                   run_id: str | None, app_id: str | None, max_seconds: float | None,
                   idle_exit: float | None, expect: int | None, log_level: str,
                   health_port: int | None) -> None:
    """Run a stream worker: classify raw documents in batches, store and publish them.

    Start several with the same app id to share the raw topic's partitions. Serves /healthz and
    /metrics on health.worker_port. Exits non-zero after a fatal error (a dead consumer
    coordinator, an unclassified failure) so a supervisor restarts it.
    """
    from finsentry.health import default_checks, start_health_server
    from finsentry.kafka_admin import check_message_limit
    from finsentry.models import load_classifier
    from finsentry.store import ScoredSink, migrate, open_store
    from finsentry.streams.monitor import WorkerMonitor
    from finsentry.streams.processor import ProcessorStats
    from finsentry.streams.worker import StopPolicy, run_worker

    setup_logging(log_level)
    # until Faust installs its own handlers: SIGTERM while loading the model is a clean stop
    signal.signal(signal.SIGTERM, _interrupt)
    settings = apply_overrides(settings, "worker", batch_size=batch_size,
                               batch_max_wait_s=batch_max_wait_s, run_id=run_id, app_id=app_id)
    if health_port is not None:
        settings = apply_overrides(settings, "health", worker_port=health_port)
    check_message_limit(settings.kafka)
    classifier = load_classifier(settings.models)
    store = open_store(settings.clickhouse)
    health = None
    try:
        migrate(store)
        sink = ScoredSink(store)
        health = start_health_server(settings, "worker", default_checks(settings, store))
        monitor = WorkerMonitor(health, settings.health.stall_after_s) if health else None
        latest: list[ProcessorStats] = []

        def on_progress(stats: ProcessorStats) -> None:
            latest[:] = [stats]
            if monitor is not None:
                monitor.count_retries(stats.retries)

        def consumer_state() -> str | None:
            return monitor.check(latest[0]) if monitor and latest else "worker not started yet"

        if health is not None:
            health.add_check("consumer", consumer_state)
            click.echo(f"health endpoint: http://{settings.health.host}:{health.port}/healthz",
                       err=True)
        stats = run_worker(settings, classifier, sink, StopPolicy(max_seconds, idle_exit, expect),
                           loglevel=log_level, on_progress=on_progress,
                           on_batch=monitor.on_batch if monitor else None,
                           on_app=monitor.on_app if monitor else None)
    finally:
        if health is not None:
            health.stop()
        store.close()
    click.echo(f"worker {settings.worker.app_id}: {stats.messages} messages, "
               f"{stats.written} stored, {stats.rejected} dead-lettered")
    if stats.fatal:
        raise StreamError(f"worker {settings.worker.app_id}: {stats.fatal}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".finsentry/demo"), show_default=True,
              help="Where the broker data, chdb store and HTML report go.")
@click.option("--documents", type=int, default=600, show_default=True,
              help="Size of the generated sample stream.")
@click.option("--seed", type=int, default=7, show_default=True)
@pass_settings
def demo_command(settings: Settings, out_dir: Path, documents: int, seed: int) -> None:
    """Run the whole pipeline with no external service: embedded broker + chdb + sample stream."""
    from finsentry.streams.demo import run_demo

    summary = run_demo(settings, out_dir, documents=documents, seed=seed)
    click.echo(summary.render())
