"""Versioned, idempotent schema migrations, recorded in `schema_migrations`.

Every statement must run on ClickHouse 18.16 AND current chdb: no DateTime64, Map, TTL,
LowCardinality, window functions or CTEs in the base schema. Features of newer servers live in
migrations with `min_server`; on older servers they are skipped (not recorded), so they apply
after an upgrade. Statements are themselves idempotent (IF NOT EXISTS), so a migration that died
half-way is simply re-run. Never edit an applied migration: add a new one (checksums are checked).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from finsentry.errors import StoreError
from finsentry.records import utcnow
from finsentry.store.base import Store
from finsentry.store.metrics import CONSUMER_LAG_DDL, WORKER_BATCHES_DDL
from finsentry.store.rollups import SENTIMENT_ROLLUP
from finsentry.store.runs import RUNS_DDL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    min_server: tuple[int, ...] | None = None  # skipped on older servers

    @property
    def checksum(self) -> str:
        return hashlib.sha256("\n;\n".join(self.statements).encode("utf-8")).hexdigest()[:16]


@dataclass
class MigrationResult:
    applied: list[Migration] = field(default_factory=list)
    skipped: list[Migration] = field(default_factory=list)  # server too old


SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime('UTC')
) ENGINE = ReplacingMergeTree()
ORDER BY version
"""

SCORED_DOCUMENTS_DDL = """
CREATE TABLE IF NOT EXISTS scored_documents (
    run_id String,
    doc_id String,
    source String,
    url String,
    title String,
    text String,
    language String,
    published_at DateTime('UTC'),
    fetched_at DateTime('UTC'),
    processed_at DateTime('UTC'),
    tickers Array(String),
    ticker_relevance Array(Float32),
    primary_ticker String,
    entities Array(String),
    content_hash String,
    novelty Float32,
    duplicate_of String,
    sentiment String,
    p_negative Float32,
    p_neutral Float32,
    p_positive Float32,
    score Float32,
    topic String,
    topic_confidence Float32,
    topic_probs String,
    model_name String,
    model_version String,
    schema_version UInt8,
    metadata String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(published_at)
ORDER BY (run_id, doc_id)
"""

SENTIMENT_MINUTE_DDL = """
CREATE TABLE IF NOT EXISTS sentiment_minute (
    run_id String,
    minute DateTime('UTC'),
    topic String,
    ticker String,
    source String,
    sentiment String,
    docs UInt64,
    score_sum Float64
) ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (run_id, minute, topic, ticker, source, sentiment)
"""

# Counts every row inserted into scored_documents: ScoredSink never inserts a stored doc twice.
SENTIMENT_MINUTE_MV_DDL = """
CREATE MATERIALIZED VIEW IF NOT EXISTS sentiment_minute_mv TO sentiment_minute AS
SELECT
    run_id,
    toStartOfMinute(published_at) AS minute,
    topic,
    arrayJoin(if(empty(tickers), [''], tickers)) AS ticker,
    source,
    sentiment,
    count() AS docs,
    sum(toFloat64(score)) AS score_sum
FROM scored_documents
GROUP BY run_id, minute, topic, ticker, source, sentiment
"""

ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    run_id String,
    alert_id String,
    rule String,
    topic String,
    ticker String,
    source String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    fired_at DateTime('UTC'),
    value Float64,
    threshold Float64,
    baseline Float64,
    doc_count UInt64,
    severity String,
    message String,
    notified UInt8,
    notify_status String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (run_id, alert_id)
"""

# Table TTL arrived in ClickHouse 19.6; older servers keep rows until deleted by hand.
RETENTION_TTL_DDL = """
ALTER TABLE scored_documents MODIFY TTL processed_at + INTERVAL 365 DAY
"""

# One row per crawl of one source, for the pipeline-health dashboard (fetched/new/duplicate/
# failed per source, last success = max(run_at) where ok).
INGEST_RUNS_DDL = """
CREATE TABLE IF NOT EXISTS ingest_runs (
    source String,
    run_at DateTime('UTC'),
    seconds Float32,
    fetched UInt32,
    new UInt32,
    duplicate UInt32,
    near_duplicate UInt32,
    failed UInt32,
    dead_lettered UInt32,
    not_modified UInt8,
    ok UInt8,
    error String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(run_at)
ORDER BY (source, run_at)
"""

# Alerts (versions 10-19). 18.16 has no ADD COLUMN IF NOT EXISTS, so the lifecycle table
# replaces `alerts`: the old rows are kept in `alerts_v1` (copied once), then `alerts` is
# recreated. Every statement is idempotent: a re-run finds alerts_v1 filled and skips the copy
# (the new table still has the copied columns). One row per alert, key (run_id, alert_id);
# a new version when it is notified or resolved. Read with FINAL.
_ALERTS_V1_COLUMNS = ("run_id, alert_id, rule, topic, ticker, source, window_start, window_end, "
                      "fired_at, value, threshold, baseline, doc_count, severity, message, "
                      "notified, notify_status, version")
ALERTS_LIFECYCLE_DDL = (
    "CREATE TABLE IF NOT EXISTS alerts_v1 AS alerts",
    f"INSERT INTO alerts_v1 ({_ALERTS_V1_COLUMNS}) SELECT {_ALERTS_V1_COLUMNS} FROM alerts "
    "WHERE (SELECT count() FROM alerts_v1) = 0",
    "DROP TABLE IF EXISTS alerts",
    """
CREATE TABLE IF NOT EXISTS alerts (
    run_id String,
    alert_id String,
    rule String,
    group_key String,
    ticker String,
    topic String,
    source String,
    language String,
    state String,
    kind String,
    metric String,
    event_time DateTime('UTC'),
    fired_at DateTime('UTC'),
    resolved_at DateTime('UTC'),
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    value Float64,
    baseline Float64,
    threshold Float64,
    p_value Float64,
    doc_count UInt64,
    severity String,
    message String,
    notified UInt8,
    notify_status String,
    silenced UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(event_time)
ORDER BY (run_id, alert_id)
""")

# Per rule and run: where evaluation stands and each key's lifecycle (JSON), so a restart
# continues exactly; history runs keep their own rows (their own run_id).
ALERT_STATE_DDL = """
CREATE TABLE IF NOT EXISTS alert_state (
    run_id String,
    rule String,
    through DateTime('UTC'),
    state String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (run_id, rule)
"""

ALERT_SILENCES_DDL = """
CREATE TABLE IF NOT EXISTS alert_silences (
    silence_id String,
    rule String,
    group_key String,
    until DateTime('UTC'),
    comment String,
    created_at DateTime('UTC'),
    removed UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY silence_id
"""

# One row per alert event and notifier: pending -> sending -> sent (or failed, retried at
# next_attempt_at). `sending` found after a restart = outcome unknown: re-sent with the same
# message_id so the receiver can recognise it.
ALERT_DELIVERIES_DDL = """
CREATE TABLE IF NOT EXISTS alert_deliveries (
    run_id String,
    alert_id String,
    event String,
    notifier String,
    recipients String,
    message_id String,
    status String,
    attempts UInt32,
    last_error String,
    next_attempt_at DateTime('UTC'),
    updated_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (run_id, alert_id, event, notifier)
"""

ALERT_CYCLES_DDL = """
CREATE TABLE IF NOT EXISTS alert_cycles (
    run_id String,
    cycle_at DateTime('UTC'),
    rule String,
    keys UInt32,
    fired UInt32,
    resolved UInt32,
    notified UInt32,
    failed UInt32,
    seconds Float32,
    service_id String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(cycle_at)
ORDER BY (run_id, rule, cycle_at)
"""

# Version ranges reserved per area so parallel work never collides: 6-9 store/rollups,
# 10-19 alerts, 20-29 replay/runs, 30-39 dashboards and metrics tables, 40-49 ingest,
# 50-59 benchmarks and clustered layout.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "scored_documents", (SCORED_DOCUMENTS_DDL,)),
    Migration(2, "sentiment_minute", (SENTIMENT_MINUTE_DDL, SENTIMENT_MINUTE_MV_DDL)),
    Migration(3, "alerts", (ALERTS_DDL,)),
    Migration(4, "scored_documents_retention_ttl", (RETENTION_TTL_DDL,), min_server=(19, 6)),
    Migration(5, "ingest_runs", (INGEST_RUNS_DDL,)),
    # Table, one-time backfill from stored documents, then the view (run before workers start).
    Migration(6, "sentiment_rollup", (SENTIMENT_ROLLUP.table_ddl(), SENTIMENT_ROLLUP.backfill(),
                                      SENTIMENT_ROLLUP.view_ddl())),
    Migration(10, "alerts_lifecycle_columns", ALERTS_LIFECYCLE_DDL),
    Migration(11, "alert_state", (ALERT_STATE_DDL,)),
    Migration(12, "alert_silences", (ALERT_SILENCES_DDL,)),
    Migration(13, "alert_deliveries", (ALERT_DELIVERIES_DDL,)),
    Migration(14, "alert_cycles", (ALERT_CYCLES_DDL,)),
    # 20-29 replay/runs: what each replay was made from and its resumable position.
    Migration(20, "runs", (RUNS_DDL,)),
    # Pipeline health (finsentry.store.metrics): one row per worker batch, per partition read.
    Migration(30, "worker_batches", (WORKER_BATCHES_DDL,)),
    Migration(31, "consumer_lag", (CONSUMER_LAG_DDL,)),
)


def statements_for(store: Store, statements: tuple[str, ...],
                   earlier: tuple[str, ...] = ()) -> list[str]:
    """The statements as written, or their clustered form when `clickhouse.cluster` is set
    (`earlier`: every statement of the migrations before, for `CREATE TABLE x AS y`)."""
    cluster = store.settings.cluster
    if not cluster:
        return list(statements)
    from finsentry.store.cluster import clustered, definitions

    out: list[str] = []
    for i, sql in enumerate(statements):
        created = definitions(earlier + statements[:i])
        out += clustered(sql, cluster, store.database, store.settings.replication_path, created)
    return out


def applied_versions(store: Store) -> dict[int, str]:
    """Applied migration versions -> checksum (creates the bookkeeping table if missing)."""
    for statement in statements_for(store, (SCHEMA_MIGRATIONS_DDL,)):
        store.execute(statement)
    rows = store.query("SELECT version, any(checksum) AS checksum FROM schema_migrations "
                       "GROUP BY version ORDER BY version")
    return {int(r["version"]): str(r["checksum"]) for r in rows}


def migrate(store: Store, migrations: tuple[Migration, ...] = MIGRATIONS) -> MigrationResult:
    """Apply the migrations not yet recorded, in order; re-running applies nothing."""
    done = applied_versions(store)
    result = MigrationResult()
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise StoreError(
                    f"migration {migration.version} ({migration.name}) changed after it was "
                    f"applied to {store.database}: add a new migration instead")
            continue
        if migration.min_server is not None and not store.supports(migration.min_server):
            log.info("skipping migration %s (%s): needs ClickHouse >= %s, server is %s",
                     migration.version, migration.name, migration.min_server,
                     store.server_version)
            result.skipped.append(migration)
            continue
        earlier = tuple(sql for m in migrations if m.version < migration.version
                        for sql in m.statements)
        for statement in statements_for(store, migration.statements, earlier):
            store.execute(statement)
        store.insert("schema_migrations", [{
            "version": migration.version, "name": migration.name,
            "checksum": migration.checksum, "applied_at": utcnow(),
        }])
        log.info("applied migration %s (%s) to %s", migration.version, migration.name,
                 store.database)
        result.applied.append(migration)
    return result
