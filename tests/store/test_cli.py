"""`finsentry db migrate|query` against both stores, through the real console entry point."""

from __future__ import annotations

import json

from click.testing import CliRunner

from finsentry.cli import cli
from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreError


def _target(settings: ClickHouseSettings) -> list[str]:
    if settings.host:
        return ["--host", settings.host, "--port", str(settings.port),
                "--database", settings.database]
    return ["--chdb-path", str(settings.chdb_path), "--database", settings.database]


def test_db_migrate_and_query(store_settings: ClickHouseSettings) -> None:
    runner = CliRunner()
    target = _target(store_settings)
    first = runner.invoke(cli, ["db", "migrate", *target], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "applied 0001 scored_documents" in first.output
    again = runner.invoke(cli, ["db", "migrate", *target], catch_exceptions=False)
    assert again.exit_code == 0 and "schema up to date" in again.output
    assert "applied" not in again.output

    table = runner.invoke(cli, ["db", "query", *target,
                                "SELECT version, name FROM schema_migrations "
                                "WHERE name != %(n)s ORDER BY version", "-p", "n=it's; --"],
                          catch_exceptions=False)
    assert table.exit_code == 0, table.output
    assert "scored_documents" in table.output and "alerts" in table.output

    lines = runner.invoke(cli, ["db", "query", *target, "--json",
                                "SELECT name FROM schema_migrations WHERE version = 1"],
                          catch_exceptions=False)
    assert [json.loads(x) for x in lines.stdout.splitlines()] == [{"name": "scored_documents"}]


def test_db_query_errors_name_the_query(store_settings: ClickHouseSettings) -> None:
    result = CliRunner().invoke(cli, ["db", "query", *_target(store_settings),
                                      "SELECT * FROM no_such_table"])
    assert isinstance(result.exception, StoreError)
    assert "no_such_table" in str(result.exception)
    bad = CliRunner().invoke(cli, ["db", "query", *_target(store_settings), "SELECT 1",
                                   "-p", "novalue"])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output


def test_db_query_output_is_inert(store_settings: ClickHouseSettings) -> None:
    """Crawled text printed by `db query` cannot forge lines or drive the terminal."""
    hostile = "x\x1b[2J\x1b[31mred\u0085nel\u2028ls\r\nBcc: evil@example.com\u202eyy"
    runner = CliRunner()
    target = _target(store_settings)
    for extra in ([], ["--json"]):
        out = runner.invoke(cli, ["db", "query", *target, *extra, "SELECT %(t)s AS title",
                                  "-p", f"t={hostile}"], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        text = out.stdout
        for raw in ("\x1b", "\u0085", "\u2028", "\r", "\u202e"):
            assert raw not in text, (extra, text)
        assert len(text.strip().splitlines()) == (1 if extra else 2), text  # header + one row
        if extra:
            assert json.loads(text)["title"] == hostile
