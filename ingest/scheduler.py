"""APScheduler wiring: one job per source (its interval, jitter, no overlap) + the buffer flush."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from finsentry.ingest.crawler import Crawler

log = logging.getLogger(__name__)


def build_scheduler(crawler: Crawler, *, start_now: bool = True) -> Any:
    """A BackgroundScheduler with a job per enabled source; the caller starts it."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    workers = max(2, min(8, len(crawler.sources) + 1))
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(workers)},
                                    timezone=UTC)
    first = datetime.now(UTC) if start_now else None
    for name, source in crawler.sources.items():
        spec = source.spec
        scheduler.add_job(
            _run_source, IntervalTrigger(seconds=spec.interval_s, jitter=spec.jitter_s or None),
            args=(crawler, name), id=f"source:{name}", name=f"crawl {name}",
            max_instances=1,  # a slow run is never overlapped by the next one
            coalesce=True,  # missed runs collapse into one
            misfire_grace_time=int(max(1, spec.interval_s)), next_run_time=first,
        )
    scheduler.add_job(
        _flush, IntervalTrigger(seconds=crawler.settings.ingest.flush_interval_s),
        args=(crawler,), id="outbox:flush", name="flush disk buffer to Kafka",
        max_instances=1, coalesce=True,
    )
    scheduler.add_job(crawler.prune, IntervalTrigger(hours=6), id="state:prune",
                      name="expire dedup state", max_instances=1, coalesce=True)
    return scheduler


def _run_source(crawler: Crawler, name: str) -> None:
    try:
        crawler.run_source(name, deliver=False)
    except Exception:  # noqa: BLE001 - keep the job alive; the error is logged and counted
        log.exception("source %s: run failed", name)
    _flush(crawler)


def _flush(crawler: Crawler) -> None:
    try:
        crawler.flush()
    except Exception:  # noqa: BLE001
        log.exception("flushing the disk buffer failed")


def run_forever(crawler: Crawler, stop: threading.Event | None = None,
                max_seconds: float | None = None) -> None:
    """Run every source on its schedule until `stop` is set (or `max_seconds` pass)."""
    stop = stop or threading.Event()
    scheduler = build_scheduler(crawler)
    scheduler.start()
    log.info("ingest: %d source(s) scheduled", len(crawler.sources))
    try:
        stop.wait(max_seconds)
    finally:
        scheduler.shutdown(wait=True)
        _flush(crawler)
