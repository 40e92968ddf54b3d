"""The clustered layout, on every migration statement. No ClickHouse cluster (Keeper, several
shards) can run here, so these tests check the transformation itself, that every result parses
in a real ClickHouse parser (chdb `EXPLAIN AST`), and, with a recording stand-in for a store,
that `migrate` sends the clustered form when `clickhouse.cluster` is set."""

from __future__ import annotations

import re
from typing import Any

import chdb
import pytest

from finsentry.config import ClickHouseSettings
from finsentry.errors import ConfigError, StoreError
from finsentry.store.cluster import clustered, create_database, definitions
from finsentry.store.migrations import MIGRATIONS, SCHEMA_MIGRATIONS_DDL, migrate

STATEMENTS = [SCHEMA_MIGRATIONS_DDL] + [s for m in MIGRATIONS for s in m.statements]
TABLES = {re.search(r"EXISTS\s+(\w+)", s)[1] for s in STATEMENTS  # type: ignore[index]
          if re.match(r"\s*CREATE\s+TABLE", s)}
VIEWS = {re.search(r"EXISTS\s+(\w+)", s)[1] for s in STATEMENTS  # type: ignore[index]
         if re.match(r"\s*CREATE\s+MATERIALIZED", s)}


def _clustered(i: int) -> list[str]:
    return clustered(STATEMENTS[i], "fin_cluster", "finsentry",
                     created=definitions(STATEMENTS[:i]))


@pytest.mark.parametrize("i", range(len(STATEMENTS)),
                         ids=[" ".join(s.split()[:6]) for s in STATEMENTS])
def test_every_statement_has_a_clustered_form_that_parses(i: int) -> None:
    statement = STATEMENTS[i]
    out = _clustered(i)
    assert out
    for sql in out:
        chdb.query("EXPLAIN AST " + sql, "CSV")  # raises on a syntax error
        if sql.lstrip().upper().startswith("INSERT"):
            continue
        assert "ON CLUSTER fin_cluster" in sql
        # every table named in the output is a local table or a Distributed front of one
        names = re.findall(r"\b(?:FROM|TO|EXISTS|ALTER TABLE)\s+(\w+)", sql)
        names += re.findall(r"ON CLUSTER \w+ AS (\w+)", sql)
        for name in names:
            assert name.removesuffix("_local") in TABLES | VIEWS, name
    head = " ".join(statement.split()[:2]).upper()
    if re.match(r"\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\w+\s*\(", statement):
        local, front = out
        assert re.search(r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/"
                         r"finsentry/\w+_local', '\{replica\}'", local)
        assert "_local ON CLUSTER" in local
        assert re.search(r"ENGINE = Distributed\(fin_cluster, finsentry, \w+_local, "
                         r"cityHash64\(", front)
        # the partitioning and sorting keys survive unchanged
        for clause in re.findall(r"(?:PARTITION|ORDER) BY [^\n]+", statement):
            assert clause.strip() in local
    elif "MATERIALIZED VIEW" in statement:
        (view,) = out
        assert re.search(r"TO \w+_local AS", view) and re.search(r"FROM \w+_local", view)
    elif head == "ALTER TABLE":
        (alter,) = out
        assert alter.startswith("ALTER TABLE scored_documents_local ON CLUSTER fin_cluster")
    elif head == "INSERT INTO":
        assert out == [statement]  # once, through the Distributed tables
    elif head == "DROP TABLE":
        assert len(out) == 2 and out[1].startswith("DROP TABLE IF EXISTS ") \
            and "_local ON CLUSTER" in out[1]
    else:  # CREATE TABLE x AS y: y's definition under x's name, its own replication path
        local, _front = out
        name = statement.split()[5]
        assert f"/finsentry/{name}_local'" in local and f"{name}_local ON CLUSTER" in local


def test_documents_shard_by_their_idempotency_key() -> None:
    scored = next(s for s in STATEMENTS if "scored_documents (" in s)
    front = clustered(scored, "c", "db")[1]
    assert front.endswith("cityHash64(run_id, doc_id))")  # one (run, doc) -> one shard


def test_replicated_engine_keeps_its_arguments() -> None:
    scored = next(s for s in STATEMENTS if "scored_documents (" in s)
    local = clustered(scored, "c", "db", "/ch/{shard}/{table}")[0]
    assert "ReplicatedReplacingMergeTree('/ch/{shard}/scored_documents_local', '{replica}', " \
           "version)" in local


def test_unknown_shapes_and_names_are_refused() -> None:
    with pytest.raises(StoreError, match="cannot transform"):
        clustered("DROP TABLE scored_documents", "c", "db")
    with pytest.raises(StoreError, match="cluster name"):
        clustered(STATEMENTS[0], "c; DROP", "db")
    assert create_database("db", "c") == "CREATE DATABASE IF NOT EXISTS db ON CLUSTER c"
    assert create_database("db", None) == "CREATE DATABASE IF NOT EXISTS db"


def test_cluster_needs_a_server() -> None:
    from finsentry.config import load_settings

    with pytest.raises(ConfigError, match="clickhouse.cluster needs clickhouse.host"):
        load_settings(clickhouse={"cluster": "fin"})
    assert load_settings(clickhouse={"cluster": "fin", "host": "ch"}).clickhouse.cluster == "fin"


class RecordingStore:
    """Stands in for a store on a cluster (none can run here): records statements, knows none."""

    def __init__(self, settings: ClickHouseSettings) -> None:
        self.settings, self.database = settings, settings.database
        self.executed: list[str] = []
        self.inserted: list[tuple[str, Any]] = []

    def execute(self, sql: str) -> None:
        self.executed.append(sql)

    def query(self, sql: str) -> list[dict[str, Any]]:
        return []

    def insert(self, table: str, rows: Any) -> None:
        self.inserted.append((table, rows))

    def supports(self, minimum: tuple[int, ...]) -> bool:
        return True


def test_migrate_runs_the_clustered_form() -> None:
    settings = ClickHouseSettings.model_validate({"host": "ch", "cluster": "fin"})
    store = RecordingStore(settings)
    result = migrate(store)  # type: ignore[arg-type]
    assert [m.version for m in result.applied] == [m.version for m in MIGRATIONS]
    expected = [sql for i in range(len(STATEMENTS))
                for sql in clustered(STATEMENTS[i], "fin", "finsentry",
                                     created=definitions(STATEMENTS[:i]))]
    assert store.executed[:2] == expected[:2]  # bookkeeping table first
    assert store.executed == expected
    assert all("ON CLUSTER fin" in sql for sql in store.executed if not sql.startswith("INSERT"))
    # checksums are those of the statements as written: a cluster does not "change" a migration
    checks = {rows[0]["version"]: rows[0]["checksum"] for _, rows in store.inserted}
    assert checks == {m.version: m.checksum for m in MIGRATIONS}
