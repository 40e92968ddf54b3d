"""`finsentry alerts run` (the scheduled service) and `finsentry alerts check` (one cycle)."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from finsentry.cli import apply_overrides, pass_settings, setting_option
from finsentry.config import Settings

if TYPE_CHECKING:
    from finsentry.alerts.engine import AlertEngine, CycleReport, Outcome

log = logging.getLogger("finsentry.alerts")


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO timestamp: {value!r}", param_hint="--as-of")\
            from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _line(o: Outcome) -> str:
    m = o.match
    text = f"{o.status:<10} {m.alert_id}  {m.summary}"
    if o.status == "new" and (o.notified or o.errors):
        text += "  [notified]" if o.notified else f"  [NOT notified: {'; '.join(o.errors)}]"
    return text


def _engine(settings: Settings, store: Any) -> AlertEngine:
    from finsentry.alerts.engine import AlertEngine

    return AlertEngine(settings.alerts, store, settings.worker.run_id)


def _report(report: CycleReport) -> str:
    return (f"cycle {report.as_of:%Y-%m-%d %H:%M:%S} run {report.run_id}: "
            f"{report.count('new')} new, {report.count('duplicate')} duplicate, "
            f"{report.count('suppressed')} suppressed, {report.sent} sent, "
            f"{report.failed} failed (retried next cycle)")


@click.group("alerts")
def alerts_group() -> None:
    """Alert rules over ClickHouse, notified by email (and the log)."""


@alerts_group.command("check")
@click.option("--as-of", "as_of", metavar="ISO", help="Evaluate the window ending here "
              "(UTC unless an offset is given; default now) - for backtests.")
@setting_option("worker", "run_id", "--run-id", help="Rows to evaluate (overrides worker.run_id; "
                "replays use their own run id).")
@click.option("--notify", is_flag=True, help="Also store new matches and send them (a full "
              "cycle); default: only print what would happen.")
@click.option("--log-level", default="WARNING", show_default=True)
@pass_settings
def check_command(settings: Settings, as_of: str | None, run_id: str | None, notify: bool,
                  log_level: str) -> None:
    """Run one evaluation cycle and print the matches."""
    from finsentry.store import migrate, open_store

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = apply_overrides(settings, "worker", run_id=run_id)
    when = _as_of(as_of) or datetime.now(UTC)
    with open_store(settings.clickhouse) as store:
        migrate(store)
        engine = _engine(settings, store)
        if not engine.rules:
            click.echo("no enabled rules in [alerts] rules", err=True)
        if notify:
            report = engine.cycle(when)
            outcomes = report.outcomes
        else:
            outcomes = engine.evaluate(when)
    for outcome in outcomes:
        click.echo(_line(outcome))
        for e in outcome.match.examples:
            click.echo(f"    [{e.score:+.2f}] {' '.join(e.title.split())} ({e.source})")
    if notify:
        click.echo(_report(report))
    else:
        click.echo(f"{len(outcomes)} matches at {when:%Y-%m-%d %H:%M:%S} UTC, run "
                   f"{settings.worker.run_id} (dry run: nothing stored or sent)")


@alerts_group.command("run")
@setting_option("alerts", "interval_s", "--interval", type=float,
                help="Seconds between cycles (overrides alerts.interval_s).")
@setting_option("worker", "run_id", "--run-id")
@click.option("--log-level", default="INFO", show_default=True)
@pass_settings
def run_command(settings: Settings, interval_s: float | None, run_id: str | None,
                log_level: str) -> None:
    """Evaluate the rules every interval until SIGINT/SIGTERM (the `alerts` service)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from finsentry.store import migrate, open_store

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job run
    settings = apply_overrides(settings, "alerts", interval_s=interval_s)
    settings = apply_overrides(settings, "worker", run_id=run_id)
    stop = threading.Event()
    with open_store(settings.clickhouse) as store:
        migrate(store)
        engine = _engine(settings, store)
        engine.check_notifiers()

        def job() -> None:
            try:
                log.info(_report(engine.cycle()))
            except Exception:  # ClickHouse down etc.: log, and the next cycle tries again
                log.exception("alert cycle failed; retrying next interval")

        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(job, "interval", seconds=settings.alerts.interval_s, id="alerts",
                          max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        log.info("alerts: %d rules, every %.0f s, run %s", len(engine.rules),
                 settings.alerts.interval_s, settings.worker.run_id)
        scheduler.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            log.info("alerts: stopping (finishing the current cycle)")
            scheduler.shutdown(wait=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
