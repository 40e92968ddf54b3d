"""`finsentry db`: schema migrations and ad-hoc queries for operators."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from finsentry.cli import apply_overrides, pass_settings, setting_option
from finsentry.config import Settings
from finsentry.sanitize import inert

F = TypeVar("F", bound=Callable[..., Any])


def connection_options(fn: F) -> F:
    """Options that override the [clickhouse] settings for one command."""
    options = [
        setting_option("clickhouse", "host", "--host",
                       help="ClickHouse server host (unset: embedded chdb)."),
        setting_option("clickhouse", "port", "--port", type=int, help="Native protocol port."),
        setting_option("clickhouse", "database", "--database", help="Database name."),
        setting_option("clickhouse", "chdb_path", "--chdb-path",
                       type=click.Path(file_okay=False, path_type=Path),
                       help="Embedded chdb data directory."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _store_settings(settings: Settings, **overrides: Any) -> Settings:
    return apply_overrides(settings, "clickhouse", **overrides)


@click.group("db")
def db_group() -> None:
    """ClickHouse schema and data."""


@db_group.command("migrate")
@connection_options
@pass_settings
def migrate_command(settings: Settings, **overrides: Any) -> None:
    """Create or upgrade the schema (idempotent: re-running applies nothing)."""
    from finsentry.store import migrate, open_store

    settings = _store_settings(settings, **overrides)
    with open_store(settings.clickhouse) as store:
        result = migrate(store)
        version = ".".join(map(str, store.server_version))
        where = settings.clickhouse.host or str(settings.clickhouse.chdb_path)
        click.echo(f"{where} (ClickHouse {version}), database {store.database}")
        for m in result.applied:
            click.echo(f"  applied {m.version:04d} {m.name}")
        for m in result.skipped:
            needs = ".".join(map(str, m.min_server or ()))
            click.echo(f"  skipped {m.version:04d} {m.name} (needs ClickHouse >= {needs})")
        if not result.applied:
            click.echo("  schema up to date")


@db_group.command("query")
@click.argument("sql")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Bind %(NAME)s in SQL to the string VALUE (escaped); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.option("--limit", type=int, default=1000, show_default=True,
              help="Print at most this many rows.")
@connection_options
@pass_settings
def query_command(settings: Settings, sql: str, params: tuple[str, ...], as_json: bool,
                  limit: int, **overrides: Any) -> None:
    """Run SQL against the store and print the result (for operators)."""
    from finsentry.store import open_store

    bound: dict[str, Any] | None = None
    if params:
        bound = {}
        for item in params:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="-p")
            bound[name] = value
    settings = _store_settings(settings, **overrides)
    with open_store(settings.clickhouse) as store:
        frame = store.query_df(sql, bound)
    shown = frame.head(limit)
    # stored text is crawled (untrusted): no raw control, line-separator or bidi character may
    # reach the terminal; JSON lines are ASCII-escaped, table cells made inert
    if as_json:
        for record in shown.to_dict(orient="records"):
            click.echo(json.dumps(record, ensure_ascii=True, default=str))
    elif frame.columns.size:
        safe = shown.map(lambda v: inert(v) if isinstance(v, str) else v)
        click.echo(safe.to_string(index=False, max_colwidth=80))
    if len(frame) > limit:
        click.echo(f"({len(frame)} rows, first {limit} shown)", err=True)
    elif not as_json:
        click.echo(f"({len(frame)} rows)", err=True)
