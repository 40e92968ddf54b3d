"""The Store interface both transports implement, safe parameter binding and retries.

One SQL text runs on both transports: parameters are written `%(name)s` and bound client-side with
clickhouse-driver's own escaping (so chdb, which has no such binding, gets exactly the same
literals). Timestamps are bound and stored as UTC.

Thread-safety: a Store serialises its calls (and each `retrying` unit, e.g. one ScoredSink.write)
with a lock, so one instance may be shared by threads; calls then run one at a time. The intended
use is one store per process, called from one worker (executor) thread.
"""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from clickhouse_driver.util.escape import escape_param
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreDataError, StoreError, StoreInterrupted, StoreUnavailableError
from finsentry.store.faults import OutageLog

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = dict[str, Any]
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a plain SQL identifier (database/table/column), else StoreError."""
    if not IDENTIFIER.match(name):
        raise StoreError(f"invalid {what} {name!r}: letters, digits and _ only")
    return name


def utc_text(value: datetime) -> str:
    """A timestamp as ClickHouse DateTime text in UTC (naive values are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(DATETIME_FORMAT)


def _plain(value: Any) -> Any:
    """Turn values clickhouse-driver's escaping would need a server context for into literals."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, set | frozenset):
        return [_plain(v) for v in sorted(value)]
    if value is None or isinstance(value, str | int | float | date):
        return value
    raise StoreError(f"cannot bind parameter of type {type(value).__name__}")


def bind(sql: str, params: Mapping[str, Any] | None) -> str:
    """Substitute `%(name)s` placeholders with escaped literals (no params: SQL unchanged)."""
    if params is None:
        return sql
    escaped = {k: escape_param(_plain(v), None) for k, v in params.items()}
    try:
        return sql % escaped
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"cannot bind parameters into {describe(sql)}: {exc!r}") from None


def describe(sql: str, limit: int = 120) -> str:
    """A short one-line form of a statement for error messages."""
    text = " ".join(sql.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class TransientStoreError(StoreError):
    """A failure worth retrying (server down, connection reset); raised inside retry loops."""


class Store(ABC):
    """One ClickHouse database, reached over the native protocol or embedded (chdb)."""

    def __init__(self, settings: ClickHouseSettings) -> None:
        self.settings = settings
        self.database = identifier(settings.database, "database name")
        self._lock = threading.RLock()
        self._version: tuple[int, ...] | None = None
        # Set by a shutting-down owner: every retry loop on this store stops at its next wait.
        self.interrupt = threading.Event()

    @cached_property
    def outage(self) -> OutageLog:
        """Failures of this store, logged with bounded noise (also read by health checks)."""
        return OutageLog(self.endpoint, log)

    @property
    def endpoint(self) -> str:
        """What log lines and errors call this store (host:port, or the chdb path)."""
        return f"ClickHouse database {self.database}"

    # -- transport hooks -------------------------------------------------------------------------
    @abstractmethod
    def _execute(self, sql: str) -> None:
        """Run one statement; raise TransientStoreError for retryable failures."""

    @abstractmethod
    def _query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a SELECT; return column names and row tuples (DateTime as aware UTC datetime)."""

    def _query_arrow(self, sql: str) -> pa.Table:
        """Run a SELECT into an Arrow table; transports override this with a columnar read
        (this fallback goes through Python rows)."""
        import pyarrow as pa

        columns, rows = self._query(sql)
        return pa.table({c: [row[i] for row in rows] for i, c in enumerate(columns)})

    @abstractmethod
    def _insert(self, table: str, columns: list[str], rows: list[Row]) -> None:
        """Insert rows (all with the same keys, datetimes UTC-aware) in one statement."""

    @abstractmethod
    def _close(self) -> None: ...

    def _reset(self) -> None:
        """Drop the connection after a transient failure so the next attempt reconnects."""
        return None

    # -- retries ---------------------------------------------------------------------------------
    def retrying(self, fn: Callable[[], T], what: str) -> T:
        """Run `fn` with the configured retries for transient failures; StoreError naming `what`.

        Callers that must not repeat a half-done step (the sink's check-then-insert) wrap the
        whole unit in this and call the store methods inside it with `retry=False`. Transient
        failures exhausted raise StoreUnavailableError; `interrupt` ends the loop with
        StoreInterrupted; data errors (StoreDataError) are never retried.
        """
        attempts = self.settings.retry_attempts
        retryer = Retrying(
            stop=stop_after_attempt(attempts) | stop_when_event_set(self.interrupt),
            wait=wait_exponential(multiplier=0.2, max=self.settings.retry_max_wait_s),
            retry=retry_if_exception(lambda e: isinstance(e, TransientStoreError)),
            before_sleep=lambda state: self._before_retry(state, what),
            sleep=lambda seconds: self.pause(seconds, what),
            reraise=False,
        )
        try:
            with self._lock:  # the whole unit: a check-then-insert must not interleave
                result = retryer(fn)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            if self.interrupt.is_set():
                raise StoreInterrupted(f"{what}: interrupted by shutdown ({last})") from last
            self.outage.failed(last or "unknown error", what)
            raise StoreUnavailableError(f"{what}: gave up after {attempts} attempts: {last}") \
                from last
        except TransientStoreError as exc:  # pragma: no cover - reraise=False wraps these
            raise StoreUnavailableError(f"{what}: {exc}") from exc
        except StoreError as exc:
            raise type(exc)(f"{what}: {exc}") from exc
        self.outage.recovered()
        return result

    def pause(self, seconds: float, what: str = "retry") -> None:
        """Sleep between attempts; a shutdown (`interrupt`) cuts the wait short and raises."""
        if self.interrupt.wait(seconds):
            raise StoreInterrupted(f"{what}: interrupted by shutdown")

    def _before_retry(self, state: RetryCallState, what: str) -> None:
        self._reset()
        error = state.outcome.exception() if state.outcome else None
        self.outage.failed(error or "unknown error", what)
        log.debug("%s: attempt %d of %d failed (%s); retrying", what, state.attempt_number,
                  self.settings.retry_attempts, error)

    def _call(self, fn: Callable[[], T], what: str, retry: bool) -> T:
        with self._lock:
            if retry:
                return self.retrying(fn, what)
            try:
                return fn()
            except TransientStoreError:
                self._reset()
                raise  # the caller's own retry loop names the unit
            except StoreDataError as exc:
                self._reset()  # a client-side refusal can leave an INSERT half-sent
                raise StoreDataError(f"{what}: {exc}") from exc
            except StoreError as exc:
                raise type(exc)(f"{what}: {exc}") from exc

    # -- public API ------------------------------------------------------------------------------
    @property
    def server_version(self) -> tuple[int, ...]:
        """The engine version as integers, e.g. (18, 16, 1) or (26, 9, 2, 1)."""
        if self._version is None:
            rows = self.query("SELECT version() AS v")
            self._version = tuple(int(p) for p in re.findall(r"\d+", str(rows[0]["v"])))
        return self._version

    def supports(self, minimum: tuple[int, ...]) -> bool:
        return self.server_version >= minimum

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *,
                retry: bool = True) -> None:
        """Run a statement (DDL, ALTER, INSERT ... SELECT) with `%(name)s` parameters."""
        text = bind(sql, params)
        self._call(lambda: self._execute(text), f"statement {describe(sql)}", retry)

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *,
              retry: bool = True) -> list[Row]:
        """Run a SELECT; rows as dicts (DateTime columns as UTC-aware datetimes)."""
        columns, rows = self._query_columns(sql, params, retry)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None, *,
                 retry: bool = True) -> pd.DataFrame:
        """Run a SELECT into a DataFrame (columns kept even when no rows)."""
        import pandas as pd

        columns, rows = self._query_columns(sql, params, retry)
        return pd.DataFrame.from_records(rows, columns=columns)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None, *,
                    retry: bool = True) -> pa.Table:
        """Run a SELECT into a pyarrow Table: columnar, no Python object per value, so numeric
        columns reach numpy without a copy (bulk reads such as a rule's range of minutes)."""
        text = bind(sql, params)
        return self._call(lambda: self._query_arrow(text), f"query {describe(sql)}", retry)

    def _query_columns(self, sql: str, params: Mapping[str, Any] | None,
                       retry: bool) -> tuple[list[str], list[tuple[Any, ...]]]:
        text = bind(sql, params)
        return self._call(lambda: self._query(text), f"query {describe(sql)}", retry)

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]], *, retry: bool = True) -> None:
        """Insert rows into `table` in ONE statement (no string-built VALUES on either transport).

        Every row must have the same keys. A retried insert may land twice if the first attempt
        reached the server before the connection failed: idempotent writers (ScoredSink) pass
        retry=False and retry their check-then-insert unit instead.
        """
        identifier(table, "table name")
        if not rows:
            return
        columns = [identifier(c, "column name") for c in rows[0]]
        clean: list[Row] = []
        for i, row in enumerate(rows):
            if list(row) != columns:
                if set(row) != set(columns):
                    raise StoreError(f"insert into {table}: row {i} has columns {sorted(row)}, "
                                     f"expected {sorted(columns)}")
            clean.append({c: _utc_aware(row[c]) for c in columns})
        self._call(lambda: self._insert(table, columns, clean), f"insert into {table}", retry)

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(database={self.database!r})"


def _utc_aware(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value
