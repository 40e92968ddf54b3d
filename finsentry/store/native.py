"""NativeStore: a ClickHouse server over the native protocol (clickhouse-driver).

Inserts use the driver's native column encoding (no VALUES text). The database is created on
first connect if missing, so `migrate` works against a fresh server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreError
from finsentry.store.base import Row, Store, TransientStoreError

# Server error codes that mean "try again later", not "this statement is wrong".
_TRANSIENT_CODES = {
    ch_errors.ErrorCodes.TOO_MANY_SIMULTANEOUS_QUERIES,
    ch_errors.ErrorCodes.NETWORK_ERROR,
    ch_errors.ErrorCodes.SOCKET_TIMEOUT,
    ch_errors.ErrorCodes.TOO_MANY_PARTS,
    ch_errors.ErrorCodes.TABLE_IS_READ_ONLY,
    ch_errors.ErrorCodes.UNEXPECTED_END_OF_FILE,
}
_NETWORK_ERRORS = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, OSError)


class NativeStore(Store):
    def __init__(self, settings: ClickHouseSettings) -> None:
        super().__init__(settings)
        if not settings.host:
            raise StoreError("NativeStore needs clickhouse.host")
        self.host = settings.host
        self._client: Client | None = None

    def _new_client(self, database: str) -> Client:
        s = self.settings
        return Client(
            host=s.host, port=s.port, user=s.user, password=s.password.get_secret_value(),
            database=database, secure=s.secure, connect_timeout=s.connect_timeout_s,
            send_receive_timeout=max(30.0, s.connect_timeout_s),
            client_name="finsentry",
        )

    def _connected(self) -> Client:
        if self._client is None:
            bootstrap = self._new_client("default")
            try:
                self._guard(lambda: bootstrap.execute(
                    f"CREATE DATABASE IF NOT EXISTS {self.database}"))
            finally:
                bootstrap.disconnect()
            self._client = self._new_client(self.database)
        return self._client

    def _guard(self, fn: Any) -> Any:
        """Run a driver call, sorting its failures into transient and permanent."""
        try:
            return fn()
        except ch_errors.ServerException as exc:
            text = exc.message.split("Stack trace:")[0].strip()
            message = f"ClickHouse {self.host}:{self.settings.port}: code {exc.code}: {text}"
            if exc.code in _TRANSIENT_CODES:
                raise TransientStoreError(message) from exc
            raise StoreError(message) from exc
        except _NETWORK_ERRORS as exc:
            raise TransientStoreError(
                f"ClickHouse {self.host}:{self.settings.port} unreachable: {exc}") from exc
        except ch_errors.Error as exc:
            raise StoreError(f"ClickHouse {self.host}:{self.settings.port}: {exc}") from exc

    def _execute(self, sql: str) -> None:
        client = self._connected()
        self._guard(lambda: client.execute(sql))

    def _query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        client = self._connected()
        rows, types = self._guard(lambda: client.execute(sql, with_column_types=True))
        columns = [name for name, _type in types]
        return columns, [tuple(_utc(v) for v in row) for row in rows]

    def _insert(self, table: str, columns: list[str], rows: list[Row]) -> None:
        client = self._connected()
        data = [tuple(row[c] for c in columns) for row in rows]
        self._guard(lambda: client.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES", data, types_check=True))

    def _reset(self) -> None:
        if self._client is not None:
            self._client.disconnect()

    def _close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value
