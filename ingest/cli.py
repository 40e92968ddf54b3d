"""`finsentry ingest run|once|flush|status`."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import click

from finsentry.cli import (
    LOG_LEVELS,
    apply_overrides,
    pass_settings,
    setting_option,
    setup_logging,
)
from finsentry.config import Settings
from finsentry.sanitize import inert


def _state_dir_option(func: Any) -> Any:
    return setting_option("ingest", "state_dir", "--state-dir",
                          type=click.Path(file_okay=False, path_type=Path))(func)


def _bootstrap_option(func: Any) -> Any:
    return setting_option("kafka", "bootstrap_servers", "--bootstrap-servers")(func)


def _prepare(settings: Settings, state_dir: Path | None, bootstrap: str | None,
             log_level: str) -> Settings:
    setup_logging(log_level)
    settings = apply_overrides(settings, "ingest", state_dir=state_dir)
    return apply_overrides(settings, "kafka", bootstrap_servers=bootstrap)


@click.group("ingest")
def ingest_group() -> None:
    """Crawlers: configured sources -> normalised documents -> Kafka raw topic."""


@ingest_group.command("run")
@_state_dir_option
@_bootstrap_option
@click.option("--max-seconds", type=float, help="Stop after this many seconds.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="INFO", show_default=True)
@pass_settings
def run_command(settings: Settings, state_dir: Path | None, bootstrap_servers: str | None,
                max_seconds: float | None, log_level: str) -> None:
    """Run every enabled source on its own schedule until interrupted.

    Serves /healthz (Kafka reachable; ClickHouse too when ingest_runs go to a server) and
    /metrics on health.ingest_port."""
    from finsentry.health import Check, clickhouse_check, kafka_check, start_health_server
    from finsentry.ingest.crawler import Crawler
    from finsentry.ingest.runlog import RunLog
    from finsentry.ingest.scheduler import run_forever

    settings = _prepare(settings, state_dir, bootstrap_servers, log_level)
    if not any(s.enabled for s in settings.ingest.sources):
        raise click.ClickException("no enabled sources in ingest.sources")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    crawler = Crawler(settings, run_log=RunLog.for_settings(settings.clickhouse))
    timeout = settings.health.check_timeout_s
    checks = [Check("kafka", kafka_check(settings.kafka, timeout))]
    if not settings.clickhouse.embedded:
        checks.append(Check("clickhouse", clickhouse_check(settings.clickhouse, timeout)))
    health = start_health_server(settings, "ingest", checks)
    try:
        run_forever(crawler, stop, max_seconds)
    finally:
        if health is not None:
            health.stop()
        crawler.close()
    click.echo(f"ingest stopped; {crawler.metrics_file} has the per-source metrics")


@ingest_group.command("once")
@click.option("--source", "source_name", required=True, help="Name of a configured source.")
@_state_dir_option
@_bootstrap_option
@click.option("--no-deliver", is_flag=True, help="Keep documents in the disk buffer only.")
@click.option("--json", "as_json", is_flag=True, help="Print each document as JSON.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="WARNING", show_default=True)
@pass_settings
def once_command(settings: Settings, source_name: str, state_dir: Path | None,
                 bootstrap_servers: str | None, no_deliver: bool, as_json: bool,
                 log_level: str) -> None:
    """Crawl one source now and print what it got."""
    from finsentry.ingest.crawler import Crawler
    from finsentry.ingest.runlog import RunLog

    settings = _prepare(settings, state_dir, bootstrap_servers, log_level)
    crawler = Crawler(settings, run_log=RunLog.for_settings(settings.clickhouse))
    try:
        result = crawler.run_source(source_name, deliver=not no_deliver)
    finally:
        crawler.close()
    for doc in result.documents:
        if as_json:
            click.echo(doc.to_json().decode("utf-8"))
            continue
        tickers = ",".join(f"{t.symbol}:{t.relevance:g}" for t in doc.tickers) or "-"
        link = f" dup-of {doc.duplicate_of[:12]}" if doc.duplicate_of else ""
        click.echo(f"{doc.published_at:%Y-%m-%d %H:%M}Z  {doc.language or '??'}  "
                   f"novelty {doc.novelty:.2f}{link}  [{inert(tickers)}]  "
                   f"{inert(doc.title, 90)}")
    for err in result.errors:
        click.echo(f"error: {inert(err)}", err=True)
    delivery = result.delivery
    sent = f"sent {delivery.sent}, buffered {delivery.pending}" if delivery else "not sent"
    click.echo(f"source {source_name}: fetched {result.fetched}, new {result.new} "
               f"(near-duplicates {result.near_duplicate}), duplicates {result.duplicate}, "
               f"failed {result.failed}, dead-lettered {result.dead_lettered}"
               f"{', not modified' if result.not_modified else ''}; {sent}", err=as_json)
    if delivery and delivery.error:
        click.echo(f"warning: {delivery.error}", err=True)


@ingest_group.command("flush")
@_state_dir_option
@_bootstrap_option
@pass_settings
def flush_command(settings: Settings, state_dir: Path | None,
                  bootstrap_servers: str | None) -> None:
    """Send documents buffered on disk (e.g. after a broker outage)."""
    from finsentry.ingest.crawler import Crawler

    settings = _prepare(settings, state_dir, bootstrap_servers, "WARNING")
    crawler = Crawler(settings)
    try:
        result = crawler.flush()
    finally:
        crawler.close()
    click.echo(f"sent {result.sent}, still buffered {result.pending}")
    if result.error:
        raise click.ClickException(result.error)


@ingest_group.command("status")
@_state_dir_option
@pass_settings
def status_command(settings: Settings, state_dir: Path | None) -> None:
    """Print per-source metrics (fetched, new, duplicate, failed, last success)."""
    from finsentry.ingest.crawler import Crawler

    settings = apply_overrides(settings, "ingest", state_dir=state_dir)
    crawler = Crawler(settings)
    try:
        snapshot = crawler.write_metrics()
    finally:
        crawler.close()
    click.echo(json.dumps(snapshot, indent=2))
