"""`finsentry dashboards build | push | preview`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from finsentry.config import Settings

PROVISIONING = Path(__file__).resolve().parent / "provisioning"
JSON_DIR = PROVISIONING / "dashboards" / "json"


@click.group("dashboards")
def dashboards_group() -> None:
    """Grafana dashboards: build the JSON, push it to Grafana, or preview it without Grafana."""


@dashboards_group.command("build")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=JSON_DIR, show_default=True, help="Folder for the dashboard JSON.")
def build_command(out_dir: Path) -> None:
    """Write every dashboard's Grafana JSON (the provisioned files) from the Python definitions."""
    from finsentry.dashboards.catalog import DASHBOARDS
    from finsentry.dashboards.grafana import write_all

    for path in write_all(out_dir, DASHBOARDS):
        click.echo(f"wrote {path}")


@dashboards_group.command("push")
@click.option("--url", required=True, envvar="GRAFANA_URL", show_envvar=True,
              help="Grafana base URL, e.g. http://localhost:3000.")
@click.option("--token", required=True, envvar="GRAFANA_TOKEN", show_envvar=True,
              help="Grafana service-account token (Editor or Admin).")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per HTTP request.")
def push_command(url: str, token: str, timeout: float) -> None:
    """Create or update the folder, data source and dashboards through Grafana's HTTP API."""
    from finsentry.dashboards.push import push

    for line in push(url, token, timeout_s=timeout):
        click.echo(line)


@dashboards_group.command("preview")
@click.option("--run", "run_id", default=None,
              help="Run id to show (default: worker.run_id, i.e. live).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for the HTML pages.")
@click.option("--ticker", default=None,
              help="Ticker for the drill-down page (default: the one with most documents).")
@click.option("--hours", default=6.0, show_default=True, help="Time range: the last N hours.")
@click.option("--start", type=click.DateTime(), default=None, help="Range start (UTC).")
@click.option("--end", type=click.DateTime(), default=None, help="Range end (UTC).")
@click.pass_obj
def preview_command(settings: Settings, run_id: str | None, out_dir: Path, ticker: str | None,
                    hours: float,
                    start: datetime | None, end: datetime | None) -> None:
    """Run every panel's SQL against the configured store and write self-contained HTML pages."""
    from finsentry.dashboards.preview import render_preview
    from finsentry.store import open_store

    finish = (end or datetime.now(UTC)).replace(tzinfo=UTC, microsecond=0)
    begin = start.replace(tzinfo=UTC) if start else finish - timedelta(hours=hours)
    with open_store(settings.clickhouse) as store:
        paths = render_preview(store, run_id or settings.worker.run_id, begin, finish, out_dir,
                               ticker=ticker)
    for path in paths:
        click.echo(f"wrote {path}")
