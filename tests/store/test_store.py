"""The Store interface on both transports: round trips, binding, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreError
from finsentry.store import Store, bind, open_store
from tests.fixtures.clickhouse import ch_settings, free_port_pair
from tests.store.factories import HOSTILE_TEXTS

ROUNDTRIP_DDL = """
CREATE TABLE IF NOT EXISTS roundtrip (
    id UInt32, text String, tags Array(String), at DateTime('UTC'), x Float64
) ENGINE = MergeTree() ORDER BY id
"""


def test_server_version_and_transport(store: Store, store_settings: ClickHouseSettings) -> None:
    version = store.server_version
    assert len(version) >= 2 and all(isinstance(p, int) for p in version)
    if store_settings.host:
        assert type(store).__name__ == "NativeStore"
    else:
        assert type(store).__name__ == "EmbeddedStore"
        assert version >= (20,)


def test_insert_query_roundtrip_hostile_text(store: Store) -> None:
    store.execute(ROUNDTRIP_DDL)
    at = datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC)
    rows = [{"id": i, "text": t, "tags": [t, "b"], "at": at, "x": 0.5}
            for i, t in enumerate(HOSTILE_TEXTS)]
    store.insert("roundtrip", rows)
    got = store.query("SELECT id, text, tags, at, x FROM roundtrip ORDER BY id")
    assert [r["text"] for r in got] == HOSTILE_TEXTS
    assert [r["tags"] for r in got] == [[t, "b"] for t in HOSTILE_TEXTS]
    assert all(r["at"] == at and r["at"].utcoffset().total_seconds() == 0 for r in got)
    # the table survived the "DROP TABLE" text, and bound parameters match verbatim
    for i, text in enumerate(HOSTILE_TEXTS):
        hit = store.query("SELECT id FROM roundtrip WHERE text = %(t)s AND has(tags, %(t)s)",
                          {"t": text})
        assert hit == [{"id": i}]
    frame = store.query_df("SELECT id, text FROM roundtrip WHERE id IN %(ids)s ORDER BY id",
                           {"ids": (0, 2)})
    assert list(frame.columns) == ["id", "text"]
    assert frame["text"].tolist() == [HOSTILE_TEXTS[0], HOSTILE_TEXTS[2]]


def test_query_df_keeps_columns_when_empty(store: Store) -> None:
    store.execute(ROUNDTRIP_DDL)
    frame = store.query_df("SELECT id, text FROM roundtrip WHERE id = %(id)s", {"id": 42})
    assert list(frame.columns) == ["id", "text"] and len(frame) == 0


def test_datetime_parameters_are_utc(store: Store) -> None:
    store.execute(ROUNDTRIP_DDL)
    at = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    store.insert("roundtrip", [{"id": 1, "text": "a", "tags": [], "at": at, "x": 1.0}])
    from zoneinfo import ZoneInfo

    same_instant = at.astimezone(ZoneInfo("America/New_York"))
    assert store.query("SELECT count() AS n FROM roundtrip WHERE at = %(at)s",
                       {"at": same_instant}) == [{"n": 1}]


def test_errors_name_the_statement(store: Store) -> None:
    with pytest.raises(StoreError, match="no_such_table"):
        store.query("SELECT * FROM no_such_table")
    with pytest.raises(StoreError, match="insert into roundtrip"):
        store.insert("roundtrip", [{"id": 1}])  # table does not exist
    store.execute(ROUNDTRIP_DDL)
    with pytest.raises(StoreError, match="row 1 has columns"):
        store.insert("roundtrip", [{"id": 1, "text": "a"}, {"id": 2}])
    with pytest.raises(StoreError, match="invalid table name"):
        store.insert("roundtrip; DROP TABLE x", [{"id": 1}])


def test_bind_escapes_like_clickhouse_driver() -> None:
    sql = bind("SELECT %(s)s, %(n)s, %(xs)s, %(b)s, %(none)s",
               {"s": "a'b\\c\n", "n": 3, "xs": ("x", "y'"), "b": True, "none": None})
    assert sql == "SELECT 'a\\'b\\\\c\\n', 3, ('x', 'y\\''), 1, NULL"
    assert bind("SELECT 100 %% 7", None) == "SELECT 100 %% 7"  # no params: untouched
    with pytest.raises(StoreError, match="missing"):
        bind("SELECT %(missing)s", {"other": 1})
    with pytest.raises(StoreError, match="cannot bind"):
        bind("SELECT %(x)s", {"x": object()})


def test_database_name_is_validated() -> None:
    with pytest.raises(ValueError):
        ch_settings(database="x; DROP DATABASE default")


def test_unreachable_server_raises_store_error_after_retries() -> None:
    port = free_port_pair()  # nothing listens there
    settings = ch_settings(host="127.0.0.1", port=port, retry_attempts=2,
                                  retry_max_wait_s=0.1, connect_timeout_s=1.0)
    with open_store(settings) as store, pytest.raises(StoreError, match="gave up after 2"):
        store.insert("scored_documents", [{"run_id": "r"}])


def test_chdb_one_path_per_process(tmp_path: Path) -> None:
    first = open_store(ch_settings(chdb_path=tmp_path / "a", database="one"))
    try:
        same = open_store(ch_settings(chdb_path=tmp_path / "a", database="two"))
        same.execute("CREATE TABLE t (x UInt8) ENGINE = MergeTree() ORDER BY x")
        assert first.query("SELECT currentDatabase() AS db") == [{"db": "one"}]
        assert same.query("SELECT count() AS n FROM t") == [{"n": 0}]
        same.close()
        with pytest.raises(StoreError, match="one data path per process"):
            open_store(ch_settings(chdb_path=tmp_path / "b"))
    finally:
        first.close()
    with pytest.raises(StoreError, match="closed"):
        first.query("SELECT 1")
