"""`finsentry replay`, `finsentry backtest`, `finsentry runs list|drop`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import click

from finsentry.cli import apply_overrides, pass_settings, setting_option
from finsentry.config import Settings
from finsentry.sanitize import inert


def _time(value: str, flag: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO timestamp: {value!r}", param_hint=flag) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.command("replay")
@click.option("--from", "start", required=True, metavar="ISO", help="Event time to start at "
              "(UTC unless an offset is given).")
@click.option("--to", "end", required=True, metavar="ISO", help="Event time to stop before.")
@click.option("--source", type=click.Choice(["kafka", "clickhouse", "file"]), required=True,
              help="kafka: a topic read by timestamp; clickhouse: a stored run; file: archives.")
@click.option("--source-run", default="live", show_default=True,
              help="clickhouse source: the run to read.")
@click.option("--topic", help="kafka source: the topic to read (default kafka.scored_topic).")
@click.option("--path", "paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file source: a JSONL or Parquet archive (repeatable).")
@click.option("--speed", type=float, help="Pace event time at X times real speed; default: as "
              "fast as possible.")
@click.option("--rescore", is_flag=True, help="Classify every document again instead of "
              "copying stored scores.")
@click.option("--model", help="With --rescore: a registered classifier name or a sentiment "
              "model folder (default: models.classifier).")
@click.option("--run", "run_id", help="Run id (default replay-<time>); an unfinished run with "
              "this id resumes from its position.")
@setting_option("replay", "publish", "--publish/--no-publish", help="Publish to the run's "
                "own topic (overrides replay.publish).")
@setting_option("replay", "batch_size", "--batch-size", type=int)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--log-level", default="WARNING", show_default=True)
@pass_settings
def replay_command(settings: Settings, start: str, end: str, source: str, source_run: str,
                   topic: str | None, paths: tuple[Path, ...], speed: float | None,
                   rescore: bool, model: str | None, run_id: str | None, publish: bool | None,
                   batch_size: int | None, no_progress: bool, log_level: str) -> None:
    """Re-publish history in event-time order into a run of its own (live never sees it)."""
    from finsentry.replay.runner import Replayer, ReplayPlan
    from finsentry.store import migrate, open_store

    _setup_logging(log_level)
    if source == "file" and not paths:
        raise click.UsageError("--source file needs at least one --path")
    if model and not rescore:
        raise click.UsageError("--model only applies with --rescore")
    settings = apply_overrides(settings, "replay", publish=publish, batch_size=batch_size)
    run_id = run_id or f"replay-{datetime.now(UTC):%Y%m%d%H%M%S}"
    plan = ReplayPlan(run_id=run_id, source=source,
                      start=_time(start, "--from"), end=_time(end, "--to"), speed=speed,
                      rescore=rescore, model=model, source_run=source_run, topic=topic,
                      paths=tuple(paths))
    with open_store(settings.clickhouse) as store:
        migrate(store)
        result = Replayer(settings, store, plan, progress=not no_progress).run()
    resumed = (f", resumed after {result.resumed_after[0]:%Y-%m-%d %H:%M:%S} "
               f"{result.resumed_after[1]}" if result.resumed_after else "")
    click.echo(f"run {result.run_id}: {result.read} documents replayed, {result.stored} stored, "
               f"{result.published} published{' to ' + result.topic if result.topic else ''}, "
               f"{result.rejected} rejected, {result.skipped} skipped{resumed}")
    click.echo(f"throughput: {result.docs_per_second:.1f} documents/s ({result.seconds:.1f} s)")


@click.command("backtest")
@click.option("--rules", "rules", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rule file (TOML or YAML; repeatable).")
@click.option("--from", "start", required=True, metavar="ISO")
@click.option("--to", "end", required=True, metavar="ISO")
@setting_option("worker", "run_id", "--run", help="The run to evaluate (default worker.run_id).")
@click.option("--events", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled events CSV (key,start,end[,rule][,label]): recall, precision, "
              "detection delay per rule.")
@click.option("--compare", "compare", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A second rule set over the same run, side by side.")
@click.option("--compare-run", help="The same rules over a second run (e.g. another model).")
@setting_option("replay", "match_grace_minutes", "--grace", type=float)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("backtest.html"), show_default=True,
              help="HTML report; the JSON goes next to it (.json).")
@click.option("--log-level", default="WARNING", show_default=True)
@pass_settings
def backtest_command(settings: Settings, rules: tuple[Path, ...], start: str, end: str,
                     run_id: str | None, events: Path | None, compare: tuple[Path, ...],
                     compare_run: str | None, match_grace_minutes: float | None, out: Path,
                     log_level: str) -> None:
    """Evaluate rule sets over a run's history (nothing written to live state) and report."""
    from finsentry.replay.backtest import run_backtest
    from finsentry.replay.evaluator import engine_evaluator
    from finsentry.replay.labels import read_labels
    from finsentry.replay.report import write_report
    from finsentry.store import migrate, open_store

    _setup_logging(log_level)
    settings = apply_overrides(settings, "worker", run_id=run_id)
    settings = apply_overrides(settings, "replay", match_grace_minutes=match_grace_minutes)
    labelled = read_labels(events) if events else []
    with open_store(settings.clickhouse) as store:
        migrate(store)
        result = run_backtest(store, engine_evaluator(), rules, settings.worker.run_id,
                              _time(start, "--from"), _time(end, "--to"), events=labelled,
                              grace_minutes=settings.replay.match_grace_minutes,
                              compare_rules=compare, compare_run=compare_run)
    for side in result.sides:
        for o in side.outcomes:
            line = f"{inert(side.name)}  {inert(o.rule)}: {len(o.alerts)} alerts"
            if o.score:
                s = o.score
                line += (f", recall {_pct(s.recall)}, precision {_pct(s.precision)}, median "
                         f"delay {_num(s.median_delay_minutes)} min")
            click.echo(line + f" ({o.seconds:.2f} s)")
    html, data = write_report(result, out)
    click.echo(f"report: {html} (numbers: {data})")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


@click.group("runs")
def runs_group() -> None:
    """Runs: live and every replay, each with its own rows."""


@runs_group.command("list")
@pass_settings
def runs_list(settings: Settings) -> None:
    """Every run: documents, time span, model, created."""
    from finsentry.store import migrate, open_store
    from finsentry.store.runs import list_runs

    with open_store(settings.clickhouse) as store:
        migrate(store)
        runs = list_runs(store)
    click.echo("run  documents  from  to  model  created  status")
    for r in runs:
        span = [f"{t:%Y-%m-%d %H:%M}" if t else "-" for t in (r.first, r.last)]
        created = f"{r.created:%Y-%m-%d %H:%M:%S}" if r.created else "-"
        cells = [r.run_id, str(r.documents), span[0], span[1], ", ".join(r.models) or "-",
                 created, r.status or r.kind or "-"]
        click.echo("  ".join(inert(c) for c in cells))


@runs_group.command("drop")
@click.argument("run_id")
@click.option("--force", is_flag=True, help="Allow dropping the live run.")
@pass_settings
def runs_drop(settings: Settings, run_id: str, force: bool) -> None:
    """Remove a run's rows, alert state and topic (never the live run's without --force)."""
    from finsentry.replay.runner import delete_replay_topic
    from finsentry.store import migrate, open_store
    from finsentry.store.runs import drop_run, get_run

    with open_store(settings.clickhouse) as store:
        migrate(store)
        record = get_run(store, run_id)
        removed = drop_run(store, run_id, live_run=settings.worker.run_id, force=force)
    topic = delete_replay_topic(settings, run_id) if record and record.topic else None
    parts = [f"{table} {n}" for table, n in removed.items()] or ["no rows"]
    click.echo(inert(f"dropped run {run_id}: {', '.join(parts)}"
                     + (f"; topic {topic} deleted" if topic else "")))
