"""Pipeline health: crawls per source (ingest_runs), Kafka consumer lag per partition
(consumer_lag), worker documents/s, batch latency, dead-letter rate and ClickHouse rows per
insert (worker_batches). Each table holds one row per crawl / partition read / batch."""

from __future__ import annotations

from finsentry.dashboards.spec import Dashboard, Panel, cond, standard_variables

_RUN = "run_id = ${run_id:sqlstring}"

CRAWLS = Panel(
    "Crawls per source", "table",
    "SELECT\n    source,\n    count() AS crawls,\n    sum(fetched) AS fetched,\n"
    "    sum(new) AS new,\n"
    "    sum(duplicate) + sum(near_duplicate) AS duplicate,\n    sum(failed) AS failed,\n"
    "    countIf(ok = 0) AS failed_crawls,\n"
    "    formatDateTime(maxIf(run_at, ok = 1), '%Y-%m-%d %H:%M:%S') AS last_success\n"
    f"FROM ingest_runs\nWHERE $__timeFilter(run_at)\n    AND {cond('source', 'source')}\n"
    "GROUP BY source\nORDER BY source",
    (("source", "string"), ("crawls", "number"), ("fetched", "number"), ("new", "number"),
     ("duplicate", "number"), ("failed", "number"), ("failed_crawls", "number"),
     ("last_success", "string")),
    width=12, height=8,
    description="Per source in the range: items fetched, new, duplicates, failures.")

NEW_PER_SOURCE = Panel(
    "New documents per source", "timeseries",
    "SELECT\n    $__timeInterval(run_at) AS time,\n    source,\n    sum(new) AS new\n"
    f"FROM ingest_runs\nWHERE $__timeFilter(run_at)\n    AND {cond('source', 'source')}\n"
    "GROUP BY time, source\nORDER BY time, source",
    (("time", "time"), ("source", "string"), ("new", "number")),
    width=12, stack=True, description="New (not duplicate) documents each crawler produced.")

LAG = Panel(
    "Consumer lag per partition", "timeseries",
    "SELECT\n    $__timeInterval(at) AS time,\n"
    "    concat(topic, '/', toString(partition)) AS partition,\n    max(lag) AS lag\n"
    f"FROM consumer_lag\nWHERE {_RUN}\n    AND $__timeFilter(at)\n"
    "GROUP BY time, partition\nORDER BY time, partition",
    (("time", "time"), ("partition", "string"), ("lag", "number")),
    width=12, description="Messages waiting behind the worker's position, per partition.")

THROUGHPUT = Panel(
    "Worker documents/s", "timeseries",
    "SELECT\n    $__timeInterval(batch_at) AS time,\n    worker_id,\n"
    "    sum(docs_in) / $__interval_s AS docs_per_s\n"
    f"FROM worker_batches\nWHERE {_RUN}\n    AND $__timeFilter(batch_at)\n"
    "GROUP BY time, worker_id\nORDER BY time, worker_id",
    (("time", "time"), ("worker_id", "string"), ("docs_per_s", "number")),
    width=12, stack=True, description="Messages taken from Kafka per second, per worker.")

LATENCY = Panel(
    "Batch latency", "timeseries",
    "SELECT\n    $__timeInterval(batch_at) AS time,\n    avg(seconds) AS mean_seconds,\n"
    "    max(seconds) AS max_seconds\n"
    f"FROM worker_batches\nWHERE {_RUN}\n    AND $__timeFilter(batch_at)\n"
    "GROUP BY time\nORDER BY time",
    (("time", "time"), ("mean_seconds", "number"), ("max_seconds", "number")),
    width=8, unit="s", description="Classify + store time per batch.")

DEAD_LETTERS = Panel(
    "Dead-letter rate", "timeseries",
    "SELECT\n    $__timeInterval(batch_at) AS time,\n"
    "    sum(dead_lettered) / greatest(1, sum(docs_in)) AS dead_letter_share\n"
    f"FROM worker_batches\nWHERE {_RUN}\n    AND $__timeFilter(batch_at)\n"
    "GROUP BY time\nORDER BY time",
    (("time", "time"), ("dead_letter_share", "number")),
    width=8, unit="percentunit", description="Share of messages sent to the dead-letter topic.")

ROWS_PER_INSERT = Panel(
    "ClickHouse rows per insert", "timeseries",
    "SELECT\n    $__timeInterval(batch_at) AS time,\n"
    "    sum(rows_per_insert) / greatest(1, sum(inserts)) AS rows_per_insert\n"
    f"FROM worker_batches\nWHERE {_RUN}\n    AND $__timeFilter(batch_at)\n"
    "GROUP BY time\nORDER BY time",
    (("time", "time"), ("rows_per_insert", "number")),
    width=8, description="Mean rows per scored_documents insert (bigger is cheaper).")

HEALTH = Dashboard(
    uid="finsentry-health", title="finsentry — pipeline health",
    description="Crawlers, Kafka lag, workers and ClickHouse inserts, from the metrics tables "
                "the services write.",
    panels=(CRAWLS, NEW_PER_SOURCE, LAG, THROUGHPUT, LATENCY, DEAD_LETTERS, ROWS_PER_INSERT),
    variables=standard_variables(),
    refresh="30s",
)
