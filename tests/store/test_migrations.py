"""Migrations apply once, re-run as no-ops, and gate newer-server features on the version."""

from __future__ import annotations

import pytest

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreError
from finsentry.store import MIGRATIONS, Migration, Store, applied_versions, migrate, open_store

TTL_VERSION = next(m.version for m in MIGRATIONS if m.min_server)


def _tables(store: Store) -> set[str]:
    rows = store.query("SELECT name FROM system.tables WHERE database = %(db)s",
                       {"db": store.database})
    return {r["name"] for r in rows}


def test_migrate_applies_then_is_idempotent(store_settings: ClickHouseSettings) -> None:
    with open_store(store_settings) as store:
        first = migrate(store)
        assert sorted(m.version for m in first.applied + first.skipped) == \
            [m.version for m in MIGRATIONS]
        assert {"scored_documents", "sentiment_minute", "sentiment_minute_mv", "alerts",
                "ingest_runs", "schema_migrations"} <= _tables(store)
        recorded = applied_versions(store)
        assert sorted(recorded) == sorted(m.version for m in first.applied)

        again = migrate(store)
        assert again.applied == []
        assert again.skipped == first.skipped
        assert applied_versions(store) == recorded
        rows = store.query("SELECT count() AS n FROM schema_migrations")
        assert rows[0]["n"] == len(recorded)  # nothing recorded twice

    with open_store(store_settings) as reopened:  # a new process/connection sees it applied
        assert migrate(reopened).applied == []


def test_ttl_migration_gated_on_server_version(store: Store) -> None:
    ddl = store.query("SHOW CREATE TABLE scored_documents")[0]
    create = str(next(iter(ddl.values())))
    if store.server_version >= (19, 6):
        assert TTL_VERSION in applied_versions(store)
        assert "TTL" in create
    else:  # ClickHouse 18.16: skipped, not recorded, so it applies after an upgrade
        assert TTL_VERSION not in applied_versions(store)
        assert "TTL" not in create
        assert [m.version for m in migrate(store).skipped] == [TTL_VERSION]


def test_changed_migration_is_refused(store: Store) -> None:
    first = MIGRATIONS[0]
    edited = Migration(first.version, first.name, (*first.statements, "SELECT 1"))
    with pytest.raises(StoreError, match=f"migration {first.version} .*changed"):
        migrate(store, (edited, *MIGRATIONS[1:]))
