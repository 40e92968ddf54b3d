"""ClickHouse store: one interface, two transports (clickhouse-driver, chdb)."""
