"""Runs: every row carries `run_id` ('live' by default); a replay or backtest writes its own.

The `runs` table (migration 20) records what each replay was made from (source, range, model)
and its resumable position; `list_runs` joins it with what the tables actually hold, and
`drop_run` removes one run's rows from every table keyed by run_id (documents, rollups, alert
state, the runs row itself). SQL valid on ClickHouse 18.16 and chdb.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from finsentry.errors import StoreError
from finsentry.records import utcnow
from finsentry.store.base import Store, identifier

TABLE = "runs"
LIVE_RUN = "live"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id String,
    kind String,
    source String,
    source_detail String,
    range_from DateTime('UTC'),
    range_to DateTime('UTC'),
    model String,
    rescore UInt8,
    speed Float64,
    topic String,
    status String,
    position_time DateTime('UTC'),
    position_id String,
    docs UInt64,
    created_at DateTime('UTC'),
    updated_at DateTime('UTC'),
    params String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY run_id
"""


@dataclass
class RunRecord:
    """One replay's bookkeeping row (the latest version wins)."""

    run_id: str
    kind: str = "replay"
    source: str = ""
    source_detail: str = ""
    range_from: datetime = EPOCH
    range_to: datetime = EPOCH
    model: str = ""
    rescore: bool = False
    speed: float = 0.0
    topic: str = ""
    status: str = "running"
    position_time: datetime = EPOCH
    position_id: str = ""
    docs: int = 0
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    params: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "kind": self.kind, "source": self.source,
            "source_detail": self.source_detail, "range_from": self.range_from,
            "range_to": self.range_to, "model": self.model, "rescore": int(self.rescore),
            "speed": float(self.speed), "topic": self.topic, "status": self.status,
            "position_time": self.position_time, "position_id": self.position_id,
            "docs": int(self.docs), "created_at": self.created_at, "updated_at": utcnow(),
            "params": json.dumps(self.params, sort_keys=True, default=str),
            "version": time.time_ns() // 1000,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        return cls(
            run_id=str(row["run_id"]), kind=str(row["kind"]), source=str(row["source"]),
            source_detail=str(row["source_detail"]), range_from=row["range_from"],
            range_to=row["range_to"], model=str(row["model"]), rescore=bool(row["rescore"]),
            speed=float(row["speed"]), topic=str(row["topic"]), status=str(row["status"]),
            position_time=row["position_time"], position_id=str(row["position_id"]),
            docs=int(row["docs"]), created_at=row["created_at"], updated_at=row["updated_at"],
            params=json.loads(str(row["params"]) or "{}"),
        )


def save_run(store: Store, record: RunRecord) -> None:
    """Write the record's current state as a new version (the latest is read back)."""
    store.insert(TABLE, [record.to_row()])


def get_run(store: Store, run_id: str) -> RunRecord | None:
    rows = store.query(f"SELECT * FROM {TABLE} FINAL WHERE run_id = %(run)s", {"run": run_id})
    return RunRecord.from_row(rows[0]) if rows else None


@dataclass
class RunSummary:
    """What `finsentry runs list` shows for one run."""

    run_id: str
    documents: int = 0
    first: datetime | None = None
    last: datetime | None = None
    models: list[str] = field(default_factory=list)
    created: datetime | None = None
    kind: str = ""
    status: str = ""
    source: str = ""


def list_runs(store: Store) -> list[RunSummary]:
    """Every run with stored documents or a runs row: documents, time span, model, created."""
    summaries: dict[str, RunSummary] = {}
    for r in store.query(
            "SELECT run_id, count() AS n, min(published_at) AS first, max(published_at) AS last, "
            "groupUniqArray(model_name) AS models, min(processed_at) AS created "
            "FROM scored_documents FINAL GROUP BY run_id ORDER BY run_id"):
        summaries[str(r["run_id"])] = RunSummary(
            run_id=str(r["run_id"]), documents=int(r["n"]), first=r["first"], last=r["last"],
            models=sorted(str(m) for m in r["models"]), created=r["created"],
            kind="live" if r["run_id"] == LIVE_RUN else "")
    for r in store.query(f"SELECT * FROM {TABLE} FINAL ORDER BY run_id"):
        rec = RunRecord.from_row(r)
        s = summaries.setdefault(rec.run_id, RunSummary(run_id=rec.run_id))
        s.created, s.kind, s.status, s.source = rec.created_at, rec.kind, rec.status, rec.source
        if rec.model and not s.models:
            s.models = [rec.model]
    return sorted(summaries.values(), key=lambda s: (s.created or EPOCH, s.run_id))


def run_tables(store: Store) -> list[str]:
    """Tables (not views) of this database with a run_id column: where a run's rows live."""
    tables = {str(r["name"]) for r in store.query(
        "SELECT name FROM system.tables WHERE database = %(db)s AND engine LIKE '%%MergeTree'",
        {"db": store.database})}
    rows = store.query("SELECT DISTINCT table FROM system.columns "
                       "WHERE database = %(db)s AND name = 'run_id'", {"db": store.database})
    return sorted(identifier(str(r["table"]), "table name") for r in rows
                  if str(r["table"]) in tables)


def drop_run(store: Store, run_id: str, *, live_run: str = LIVE_RUN, force: bool = False,
             timeout_s: float = 120.0) -> dict[str, int]:
    """Delete a run's rows from every run-keyed table; rows removed per table.

    The live run (and the configured `live_run`) is refused unless `force`. Deletes are
    mutations (asynchronous on a server); this waits until they are done.
    """
    if run_id in {LIVE_RUN, live_run} and not force:
        raise StoreError(f"run {run_id!r} is the live run: refusing to drop it without --force")
    removed: dict[str, int] = {}
    for table in run_tables(store):
        n = int(store.query(f"SELECT count() AS n FROM {table} WHERE run_id = %(run)s",
                            {"run": run_id})[0]["n"])
        if n:
            store.execute(f"ALTER TABLE {table} DELETE WHERE run_id = %(run)s", {"run": run_id})
            removed[table] = n
    _wait_for_mutations(store, list(removed), timeout_s)
    return removed


def _wait_for_mutations(store: Store, tables: list[str], timeout_s: float) -> None:
    if not tables:
        return
    deadline = time.monotonic() + timeout_s
    while True:
        rows = store.query("SELECT count() AS n FROM system.mutations WHERE database = %(db)s "
                           "AND table IN %(tables)s AND is_done = 0",
                           {"db": store.database, "tables": tuple(tables)})
        if not int(rows[0]["n"]):
            return
        if time.monotonic() > deadline:
            raise StoreError(f"deleting a run from {', '.join(tables)}: mutations still "
                             f"running after {timeout_s:.0f}s")
        time.sleep(0.2)
