"""A real chdb store, schema migrated, filled with tests/dashboards/data.py (one per module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finsentry.config import ClickHouseSettings
from finsentry.store import Store, migrate, open_store
from tests.dashboards.data import fill


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    settings = ClickHouseSettings.model_validate({
        "chdb_path": tmp_path_factory.mktemp("chdb") / "data", "database": "finsentry",
        "retry_attempts": 1,
    })
    with open_store(settings) as opened:
        migrate(opened)
        fill(opened)
        yield opened
