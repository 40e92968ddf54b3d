"""`finsentry topics`, `finsentry worker`, `finsentry demo`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from finsentry.cli import apply_overrides, pass_settings, setting_option
from finsentry.config import Settings


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
@click.option("--log-level", default="WARNING", show_default=True)
@pass_settings
def worker_command(settings: Settings, batch_size: int | None, batch_max_wait_s: float | None,
                   run_id: str | None, app_id: str | None, max_seconds: float | None,
                   idle_exit: float | None, expect: int | None, log_level: str) -> None:
    """Run a stream worker: classify raw documents in batches, store and publish them.

    Start several with the same app id to share the raw topic's partitions.
    """
    from finsentry.models import load_classifier
    from finsentry.store import ScoredSink, migrate, open_store
    from finsentry.streams.worker import StopPolicy, run_worker

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = apply_overrides(settings, "worker", batch_size=batch_size,
                               batch_max_wait_s=batch_max_wait_s, run_id=run_id, app_id=app_id)
    classifier = load_classifier(settings.models)
    store = open_store(settings.clickhouse)
    try:
        migrate(store)
        stats = run_worker(settings, classifier, ScoredSink(store),
                           StopPolicy(max_seconds, idle_exit, expect), loglevel=log_level)
    finally:
        store.close()
    click.echo(f"worker {settings.worker.app_id}: {stats.messages} messages, "
               f"{stats.written} stored, {stats.rejected} dead-lettered")


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
