"""The clustered layout: the same migrations, turned into ReplicatedMergeTree + Distributed DDL.

With `clickhouse.cluster` set (a cluster named in the servers' `remote_servers`, with `{shard}`
and `{replica}` macros and ZooKeeper/Keeper configured), `migrate` runs every statement through
`clustered()` instead of as written:

- `CREATE TABLE t (...) ENGINE = XMergeTree(args) ...` becomes a local table on every node,
  `t_local ON CLUSTER c ... ENGINE = ReplicatedXMergeTree('<path>/t_local', '{replica}', args)`,
  plus `t ON CLUSTER c AS t_local ENGINE = Distributed(c, db, t_local, cityHash64(<ORDER BY>))`.
  Sharding by the sorting key keeps every (run_id, doc_id) on one shard, so ReplacingMergeTree's
  FINAL and the sink's "already stored?" check stay exact across shards;
- `CREATE MATERIALIZED VIEW v TO t AS SELECT ... FROM s` is created on every node over the
  local tables (`TO t_local ... FROM s_local`), so each shard rolls up what it stores;
- `ALTER TABLE t ...` (TTL) applies to `t_local ON CLUSTER c`; `DROP TABLE` drops both tables
  on every node; `CREATE TABLE x AS y` becomes x's own definition (y's, renamed, so it gets
  its own replication path); `INSERT ... SELECT` (a backfill) runs once through the
  Distributed tables.

Readers and writers keep using the plain names (the Distributed tables); the native store
inserts with `insert_distributed_sync=1` so a batch is on its shard when the insert returns.
One transformation for every statement, so a new migration gets the clustered form for free;
a statement of another shape is refused by name rather than run un-clustered. No cluster runs
in this project's tests: they check the transformation of every migration statement and that
each result parses (chdb `EXPLAIN AST`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from finsentry.errors import StoreError
from finsentry.store.base import describe, identifier

LOCAL_SUFFIX = "_local"
DEFAULT_REPLICATION_PATH = "/clickhouse/tables/{shard}/{database}/{table}"

_CREATE_TABLE = re.compile(
    r"^\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(?P<name>\w+)\s*(?P<columns>\(.*\))\s*"
    r"ENGINE\s*=\s*(?P<engine>\w*MergeTree)\s*(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$",
    re.S | re.I)
_CREATE_VIEW = re.compile(
    r"^\s*CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+(?P<name>\w+)\s+TO\s+"
    r"(?P<target>\w+)\s+AS\s+(?P<select>SELECT\s.*)$", re.S | re.I)
_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s+(?P<name>\w+)\s+(?P<rest>.*)$", re.S | re.I)
_CREATE_AS = re.compile(
    r"^\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(?P<name>\w+)\s+AS\s+(?P<source>\w+)\s*$", re.I)
_DROP = re.compile(r"^\s*DROP\s+TABLE\s+IF\s+EXISTS\s+(?P<name>\w+)\s*$", re.I)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+\w+", re.I)
_ORDER_BY = re.compile(r"\bORDER\s+BY\s+(?P<key>\([^)]*\)|\w+)", re.I)
_FROM = re.compile(r"\b(FROM|JOIN)\s+(\w+)", re.I)


def quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def definitions(statements: Iterable[str]) -> dict[str, str]:
    """Table name -> the CREATE statement that defines it, after `statements` ran in order."""
    created: dict[str, str] = {}
    for sql in statements:
        m = _CREATE_TABLE.match(sql)
        if m:
            created[m["name"]] = sql
        m = _CREATE_AS.match(sql)
        if m and m["source"] in created:
            created[m["name"]] = _renamed(created[m["source"]], m["name"])
        m = _DROP.match(sql)
        if m:
            created.pop(m["name"], None)
    return created


def _renamed(create: str, name: str) -> str:
    return re.sub(r"(EXISTS\s+)\w+", lambda g: g[1] + name, create, count=1)


def clustered(statement: str, cluster: str, database: str,
              replication_path: str = DEFAULT_REPLICATION_PATH,
              created: Mapping[str, str] | None = None) -> list[str]:
    """The clustered form of one migration statement; `created` (see `definitions`) resolves
    `CREATE TABLE x AS y`, which must not copy y's replication path."""
    identifier(cluster, "cluster name")
    identifier(database, "database name")
    on = f"ON CLUSTER {cluster}"
    if _INSERT.match(statement):
        return [statement]  # runs once, through the Distributed tables (rows go to their shards)
    m = _DROP.match(statement)
    if m:
        return [f"DROP TABLE IF EXISTS {m['name']} {on}",
                f"DROP TABLE IF EXISTS {m['name']}{LOCAL_SUFFIX} {on}"]
    m = _CREATE_AS.match(statement)
    if m:
        source = (created or {}).get(m["source"])
        if source is None:
            raise StoreError(f"clustered layout: no definition of {m['source']} for "
                             f"{describe(statement)}")
        return clustered(_renamed(source, m["name"]), cluster, database, replication_path)
    m = _CREATE_TABLE.match(statement)
    if m:
        name, local = m["name"], m["name"] + LOCAL_SUFFIX
        path = replication_path.replace("{database}", database).replace("{table}", local)
        args = [quote(path), quote("{replica}")]
        if m["args"] and m["args"].strip():
            args.append(m["args"].strip())
        key = _ORDER_BY.search(m["rest"])
        if key is None:
            raise StoreError(f"clustered layout: no ORDER BY (shard key) in {describe(statement)}")
        shard_key = key["key"].strip()
        shard_key = shard_key[1:-1] if shard_key.startswith("(") else shard_key
        return [
            f"CREATE TABLE IF NOT EXISTS {local} {on} {m['columns']}\n"
            f"ENGINE = Replicated{m['engine']}({', '.join(args)})\n{m['rest'].strip()}",
            f"CREATE TABLE IF NOT EXISTS {name} {on} AS {local}\n"
            f"ENGINE = Distributed({cluster}, {database}, {local}, cityHash64({shard_key}))",
        ]
    m = _CREATE_VIEW.match(statement)
    if m:
        select = _FROM.sub(lambda f: f"{f[1]} {f[2]}{LOCAL_SUFFIX}", m["select"])
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {m['name']} {on} "
                f"TO {m['target']}{LOCAL_SUFFIX} AS {select.rstrip()}"]
    m = _ALTER.match(statement)
    if m:
        return [f"ALTER TABLE {m['name']}{LOCAL_SUFFIX} {on} {m['rest'].rstrip()}"]
    raise StoreError(f"clustered layout: cannot transform {describe(statement)} "
                     "(CREATE TABLE ... MergeTree, CREATE MATERIALIZED VIEW ... TO, ALTER TABLE)")


def create_database(database: str, cluster: str | None) -> str:
    """CREATE DATABASE on this server, or on every node of the cluster."""
    on = f" ON CLUSTER {identifier(cluster, 'cluster name')}" if cluster else ""
    return f"CREATE DATABASE IF NOT EXISTS {identifier(database, 'database name')}{on}"
