"""`finsentry alerts run|check|test-rule|list|silence|reset`.

`run` is the service (one `AlertEngine.cycle()` per interval); `check` one cycle (dry unless
--notify; exits 1 when a delivery failed); `test-rule` every alert a rule would have fired over a
time range, writing nothing; `list` stored alerts; `silence add|list|remove`; `reset` forgets a
history run's alert state (the live run only with --include-live).
Everything printed from stored or crawled text goes through `inert` (one line, no escapes).
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from finsentry.cli import apply_overrides, pass_settings, setting_option
from finsentry.config import Settings
from finsentry.sanitize import inert

if TYPE_CHECKING:
    from finsentry.alerts.base import AlertEvent
    from finsentry.alerts.engine import AlertEngine

log = logging.getLogger("finsentry.alerts")
LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


def _when(value: str | None, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO timestamp: {inert(value)!s}",
                                 param_hint=param) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _duration(value: str) -> timedelta:
    m = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if not m:
        raise click.BadParameter(f"{inert(value)}: use e.g. 30m, 2h, 7d", param_hint="--for")
    return timedelta(minutes=int(m[1]) * {"m": 1, "h": 60, "d": 1440}[m[2]])


def _logging(level: str) -> None:
    from finsentry.sanitize import InertFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(InertFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def event_line(e: AlertEvent) -> str:
    p = "" if e.p_value != e.p_value else f" p={e.p_value:.2g}"
    return inert(f"{e.event_time:%Y-%m-%d %H:%M} {e.state:<8} {e.rule} {e.group_key} "
                 f"{e.metric}={e.value:.3g} baseline={e.baseline:.3g}{p} docs={e.doc_count} "
                 f"id={e.alert_id}")


def _engine(settings: Settings, store: Any) -> AlertEngine:
    from finsentry.alerts.engine import AlertEngine

    return AlertEngine(settings.alerts, store, settings.worker.run_id)


@click.group("alerts")
def alerts_group() -> None:
    """Alert rules over ClickHouse, notified by email, webhook and the log."""


@alerts_group.command("check")
@click.option("--as-of", "as_of", metavar="ISO", help="Pretend it is this time (UTC unless an "
              "offset is given; default now).")
@setting_option("worker", "run_id", "--run-id", help="Rows to evaluate (overrides "
                "worker.run_id).")
@click.option("--notify", is_flag=True, help="Store and send (a full cycle); default: only "
              "print what the next cycle would fire.")
@click.option("--log-level", default="WARNING", show_default=True, type=LEVELS)
@pass_settings
def check_command(settings: Settings, as_of: str | None, run_id: str | None, notify: bool,
                  log_level: str) -> None:
    """Run one evaluation cycle and print its alerts (exit 1 if a delivery failed)."""
    from finsentry.store import migrate, open_store

    _logging(log_level)
    settings = apply_overrides(settings, "worker", run_id=run_id)
    now = _when(as_of, "--as-of") or datetime.now(UTC)
    with open_store(settings.clickhouse) as store:
        migrate(store)
        engine = _engine(settings, store)
        if not engine.rules:
            click.echo("no enabled rules (alerts.rules / alerts.rules_dir)", err=True)
        if notify:
            report = engine.cycle(now)
            for e in report.events:
                click.echo(event_line(e))
            click.echo(report.line())
            if report.failed or report.errors:
                for error in report.errors:
                    click.echo(f"error: {inert(error, 300)}", err=True)
                sys.exit(1)
            return
        count = 0
        for rule in engine.rules:
            events, _, _ = engine.evaluate(rule, now)
            for e in events:
                click.echo(event_line(e))
            count += len(events)
    click.echo(f"{count} events at {now:%Y-%m-%d %H:%M:%S} UTC, run "
               f"{inert(settings.worker.run_id)} (dry run: nothing stored or sent)")


@alerts_group.command("test-rule")
@click.argument("rule_name")
@click.option("--from", "start", required=True, metavar="ISO", help="First minute evaluated.")
@click.option("--to", "end", required=True, metavar="ISO", help="End (exclusive).")
@setting_option("worker", "run_id", "--run", "--run-id", help="Rows to evaluate (a replay's "
                "run id; overrides worker.run_id).")
@pass_settings
def test_rule_command(settings: Settings, rule_name: str, start: str, end: str,
                      run_id: str | None) -> None:
    """Every alert RULE would have fired over a range: nothing sent, nothing written."""
    from finsentry.alerts.evaluate import evaluate_range
    from finsentry.alerts.rulefiles import load_rules
    from finsentry.store import open_store

    settings = apply_overrides(settings, "worker", run_id=run_id)
    specs = {s.name: s for s in load_rules(settings.alerts)}
    if rule_name not in specs:
        raise click.BadParameter(f"no rule named {inert(rule_name)}; known: "
                                 f"{', '.join(sorted(specs)) or 'none'}", param_hint="RULE")
    lo, hi = _when(start, "--from"), _when(end, "--to")
    assert lo is not None and hi is not None
    with open_store(settings.clickhouse) as store:
        events = evaluate_range(store, specs[rule_name], settings.worker.run_id, lo, hi)
    for e in events:
        click.echo(event_line(e))
    fired = sum(1 for e in events if e.state == "firing")
    click.echo(f"{fired} alerts fired, {len(events) - fired} resolved, {lo:%Y-%m-%d %H:%M} to "
               f"{hi:%Y-%m-%d %H:%M} UTC, run {inert(settings.worker.run_id)} (nothing written)")


@alerts_group.command("list")
@click.option("--firing", is_flag=True, help="Only alerts still firing.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@setting_option("worker", "run_id", "--run-id")
@pass_settings
def list_command(settings: Settings, firing: bool, limit: int, run_id: str | None) -> None:
    """Stored alerts, newest first."""
    from finsentry.alerts.state import list_alerts
    from finsentry.store import migrate, open_store

    settings = apply_overrides(settings, "worker", run_id=run_id)
    with open_store(settings.clickhouse) as store:
        migrate(store)
        rows = list_alerts(store, settings.worker.run_id, firing=firing, limit=limit)
    for r in rows:
        flags = ("notified" if r["notified"] else "not-notified") + \
            (" silenced" if r["silenced"] else "")
        click.echo(inert(f"{r['event_time']:%Y-%m-%d %H:%M} {r['state']:<8} {r['rule']} "
                         f"{r['group_key']} {r['message']} [{flags}] id={r['alert_id']}"))
    click.echo(f"{len(rows)} alerts")


@alerts_group.group("silence")
def silence_group() -> None:
    """Silences: matching alerts are stored but not notified until the silence ends."""


@silence_group.command("add")
@click.option("--rule", default="", help="Rule name or pattern (default: any rule).")
@click.option("--key", "group_key", default="", help="Key such as ticker=AAPL, or a pattern "
              "(default: any key).")
@click.option("--for", "duration", default=None, help="How long, e.g. 30m, 2h, 7d.")
@click.option("--until", default=None, metavar="ISO", help="Until this time instead.")
@click.option("--comment", required=True, help="Why (shown in `silence list`).")
@pass_settings
def silence_add(settings: Settings, rule: str, group_key: str, duration: str | None,
                until: str | None, comment: str) -> None:
    from finsentry.alerts.state import add_silence
    from finsentry.store import migrate, open_store

    end = _when(until, "--until") if until else \
        datetime.now(UTC) + _duration(duration) if duration else None
    if end is None:
        raise click.UsageError("give --for or --until")
    with open_store(settings.clickhouse) as store:
        migrate(store)
        silence_id = add_silence(store, rule, group_key, end, comment)
    click.echo(f"silence {silence_id} until {end:%Y-%m-%d %H:%M} UTC")


@silence_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also expired silences.")
@pass_settings
def silence_list(settings: Settings, show_all: bool) -> None:
    from finsentry.alerts.state import silences
    from finsentry.store import migrate, open_store

    with open_store(settings.clickhouse) as store:
        migrate(store)
        found = silences(store, active_at=None if show_all else datetime.now(UTC))
    for s in found:
        click.echo(inert(f"{s.silence_id} rule={s.rule or '*'} key={s.group_key or '*'} "
                         f"until={s.until:%Y-%m-%d %H:%M} {s.comment}"))
    click.echo(f"{len(found)} silences")


@silence_group.command("remove")
@click.argument("silence_id")
@pass_settings
def silence_remove(settings: Settings, silence_id: str) -> None:
    from finsentry.alerts.state import remove_silence
    from finsentry.store import migrate, open_store

    with open_store(settings.clickhouse) as store:
        migrate(store)
        if not remove_silence(store, silence_id):
            raise click.ClickException(f"no active silence {inert(silence_id)}")
    click.echo(f"removed silence {inert(silence_id)}")


@alerts_group.command("reset")
@click.option("--run-id", "run_id", required=True, help="The run whose alert state, alerts and "
              "deliveries are forgotten (a history/replay run evaluated again from scratch).")
@click.option("--include-live", is_flag=True, help="Allow resetting worker.run_id (the live "
              "run): its alerts would fire and be sent again.")
@pass_settings
def reset_command(settings: Settings, run_id: str, include_live: bool) -> None:
    """Forget one run's alert state (never the live run's unless --include-live)."""
    from finsentry.alerts.state import reset_state
    from finsentry.store import migrate, open_store

    if run_id == settings.worker.run_id and not include_live:
        raise click.UsageError(f"{inert(run_id)} is the live run (worker.run_id); pass "
                               "--include-live to reset it anyway")
    with open_store(settings.clickhouse) as store:
        migrate(store)
        rules = reset_state(store, run_id)
    click.echo(f"reset run {inert(run_id)}: state of {rules} rules, its alerts and deliveries "
               "removed")


@alerts_group.command("run")
@setting_option("alerts", "interval_s", "--interval", type=click.FloatRange(min=1.0),
                help="Seconds between cycles (overrides alerts.interval_s).")
@setting_option("worker", "run_id", "--run-id")
@click.option("--log-level", default="INFO", show_default=True, type=LEVELS)
@pass_settings
def run_command(settings: Settings, interval_s: float | None, run_id: str | None,
                log_level: str) -> None:
    """Evaluate the rules every interval until SIGINT/SIGTERM (the `alerts` service)."""
    _logging(log_level)
    settings = apply_overrides(settings, "alerts", interval_s=interval_s)
    settings = apply_overrides(settings, "worker", run_id=run_id)
    run_service(settings)


def run_service(settings: Settings, stop: threading.Event | None = None) -> None:
    """The service loop (apscheduler): one engine cycle per interval; stops on SIGTERM."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from finsentry.health import Check, clickhouse_check, start_health_server
    from finsentry.store import migrate, open_store

    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job run
    stop = stop or threading.Event()
    with open_store(settings.clickhouse) as store:
        migrate(store)
        engine = _engine(settings, store)
        engine.check_notifiers()
        # /healthz fails while ClickHouse (the rules' only input) is unreachable; /metrics
        health = start_health_server(settings, "alerts", [Check("clickhouse", clickhouse_check(
            settings.clickhouse, settings.health.check_timeout_s, store))])

        def job() -> None:
            try:
                log.info("%s", engine.cycle().line())
            except Exception as exc:  # ClickHouse down etc.: the next cycle tries again
                log.error("alert cycle failed; retrying next interval: %s", exc)

        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(job, "interval", seconds=settings.alerts.interval_s, id="alerts",
                          max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        log.info("alerts: %d rules, every %.0f s, run %s", len(engine.rules),
                 settings.alerts.interval_s, inert(settings.worker.run_id))
        scheduler.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            log.info("alerts: stopping (finishing the current cycle)")
            scheduler.shutdown(wait=True)
            if health is not None:
                health.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
