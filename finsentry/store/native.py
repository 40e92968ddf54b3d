"""NativeStore: a ClickHouse server over the native protocol (clickhouse-driver).

Inserts use the driver's native column encoding (no VALUES text). The database is created on
first connect if missing, so `migrate` works against a fresh server.
"""

from __future__ import annotations

import logging
import struct
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreDataError, StoreError
from finsentry.store.base import Row, Store, TransientStoreError
from finsentry.store.cluster import create_database
from finsentry.store.faults import classify_code

if TYPE_CHECKING:
    import pyarrow as pa

_NETWORK_ERRORS = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, OSError)
# The server answered something that is not the native protocol (an HTTP port, another service).
_PROTOCOL_ERRORS = (ch_errors.UnexpectedPacketFromServerError,
                    ch_errors.UnknownPacketFromServerError)


class NativeStore(Store):
    def __init__(self, settings: ClickHouseSettings) -> None:
        super().__init__(settings)
        if not settings.host:
            raise StoreError("NativeStore needs clickhouse.host")
        self.host = settings.host
        self._client: Client | None = None
        self._ever_connected = False
        # the driver logs every failed connect with a traceback; this store's OutageLog already
        # reports an outage once when it starts, once when it ends, and a summary in between
        logging.getLogger("clickhouse_driver.connection").setLevel(logging.CRITICAL)

    @property
    def endpoint(self) -> str:
        return f"ClickHouse {self.host}:{self.settings.port}"

    def _new_client(self, database: str, timeout: float | None = None) -> Client:
        s = self.settings
        return Client(
            host=s.host, port=s.port, user=s.user, password=s.password.get_secret_value(),
            database=database, secure=s.secure, connect_timeout=s.connect_timeout_s,
            send_receive_timeout=timeout or max(30.0, s.connect_timeout_s),
            client_name="finsentry",
            # clustered layout: an insert returns once its rows are on their shard, so the
            # sink's "already stored?" check sees them (see finsentry.store.cluster)
            settings={"insert_distributed_sync": 1} if s.cluster else None,
        )

    def _connected(self) -> Client:
        if self._client is None:
            # The first connection must answer the handshake within seconds: a port
            # that accepts but stays silent (Kafka, SSH, ...) is not ClickHouse, and retrying
            # it for minutes helps nobody. Later reconnects are ordinary transient failures.
            first = not self._ever_connected
            handshake_s = max(self.settings.connect_timeout_s, 5.0)  # a busy server may be slow
            timeout = handshake_s if first else None
            bootstrap = self._new_client("default", timeout)
            try:
                self._guard(lambda: bootstrap.execute(
                    create_database(self.database, self.settings.cluster)))
            except TransientStoreError as exc:
                if first and isinstance(exc.__cause__, ch_errors.SocketTimeoutError):
                    raise StoreError(
                        f"{self.endpoint} accepted a connection but gave no ClickHouse handshake "
                        f"within {handshake_s:g}s: is it a ClickHouse "
                        f"native-protocol port?") from exc
                raise
            finally:
                bootstrap.disconnect()
            self._client = self._new_client(self.database)
            self._ever_connected = True
        return self._client

    def _guard(self, fn: Any) -> Any:
        """Run a driver call, sorting its failures into transient and permanent."""
        try:
            return fn()
        except _PROTOCOL_ERRORS as exc:  # not ClickHouse at all: retrying cannot help
            raise StoreError(f"{self.endpoint} does not speak the ClickHouse native protocol "
                             f"({_one_line(exc)})") from exc
        except ch_errors.ServerException as exc:
            text = exc.message.split("Stack trace:")[0].strip()
            message = f"{self.endpoint}: code {exc.code}: {_one_line(text)}"
            kind = classify_code(exc.code)
            if kind == "transient":
                raise TransientStoreError(message) from exc
            raise (StoreDataError if kind == "data" else StoreError)(message) from exc
        except _NETWORK_ERRORS as exc:
            raise TransientStoreError(f"{self.endpoint} unreachable: {_one_line(exc)}") from exc
        except ch_errors.Error as exc:  # client side, e.g. TypeMismatchError for a bad value
            code = getattr(exc, "code", None)
            kind = classify_code(code)
            message = f"{self.endpoint}: {_one_line(exc)}"
            if kind == "transient":
                raise TransientStoreError(message) from exc
            raise (StoreDataError if kind == "data" else StoreError)(message) from exc
        except (struct.error, OverflowError, ValueError, TypeError) as exc:  # column encoding
            raise StoreDataError(f"{self.endpoint}: a value does not fit its column: "
                                 f"{_one_line(exc)}") from exc

    def _execute(self, sql: str) -> None:
        client = self._connected()
        self._guard(lambda: client.execute(sql))

    def _query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        client = self._connected()
        rows, types = self._guard(lambda: client.execute(sql, with_column_types=True))
        columns = [name for name, _type in types]
        return columns, [tuple(_utc(v) for v in row) for row in rows]

    def _query_arrow(self, sql: str) -> pa.Table:
        client = self._connected()
        # use_numpy: numeric columns straight from the wire buffers, strings as Arrow buffers
        return self._guard(lambda: client.query_arrow(sql, settings={"use_numpy": True}))

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


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value
