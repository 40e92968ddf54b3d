"""EmbeddedStore: the chdb engine in this process, data under `clickhouse.chdb_path`.

chdb allows ONE data path per process; stores on the same path share one session (refcounted) and
a store on another path while one is open is a StoreError. Inserts send a JSONEachRow body
(json.dumps escaping, never string-built VALUES); results come back as
one JSONCompact document per query (parsed whole, never split into lines, so NEL, U+2028 or CR
inside a value stay data) and are typed from the column types. Engine errors are sorted by their
code like the server's (finsentry.store.faults).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreDataError, StoreError
from finsentry.store.base import DATETIME_FORMAT, Row, Store, TransientStoreError, utc_text
from finsentry.store.faults import classify_code, code_in

if TYPE_CHECKING:
    import pyarrow as pa

# Session-wide settings so results and inserts behave like the native transport.
_SESSION_SETTINGS = (
    "SET output_format_json_quote_64bit_integers = 0",
    "SET output_format_json_quote_denormals = 1",
    "SET input_format_skip_unknown_fields = 0",
    "SET session_timezone = 'UTC'",
    "SET output_format_json_validate_utf8 = 1",
    # query_arrow: read in this process, so compressing the stream only costs CPU twice
    "SET output_format_arrow_compression_method = 'none'",
    "SET output_format_arrow_string_as_string = 1",
)


class _Shared:
    """The process-wide chdb session and which database it currently `USE`s."""

    lock = threading.RLock()
    session: Any = None
    path: Path | None = None
    users = 0
    current_db: str | None = None


class EmbeddedStore(Store):
    def __init__(self, settings: ClickHouseSettings) -> None:
        super().__init__(settings)
        self.path = Path(settings.chdb_path).expanduser().resolve()
        self._open = False
        self._attach()

    def _attach(self) -> None:
        from chdb import session as chdb_session

        with _Shared.lock:
            if _Shared.session is not None and _Shared.path != self.path:
                raise StoreError(f"chdb is already open at {_Shared.path} in this process; "
                                 f"cannot also open {self.path} (one data path per process)")
            if _Shared.session is None:
                self.path.mkdir(parents=True, exist_ok=True)
                try:
                    _Shared.session = chdb_session.Session(str(self.path))
                    for statement in _SESSION_SETTINGS:
                        _Shared.session.query(statement)
                except Exception as exc:
                    _Shared.session = None
                    raise StoreError(f"cannot open chdb at {self.path}: {exc}") from exc
                _Shared.path, _Shared.current_db = self.path, None
            _Shared.users += 1
            self._open = True
            self._run(f"CREATE DATABASE IF NOT EXISTS {self.database}", use_db=False)

    def _run(self, sql: str, fmt: str = "CSV", use_db: bool = True) -> Any:
        with _Shared.lock:
            if not self._open or _Shared.session is None:
                raise StoreError(f"chdb store at {self.path} is closed")
            try:
                if use_db and _Shared.current_db != self.database:
                    _Shared.session.query(f"USE {self.database}")
                    _Shared.current_db = self.database
                return _Shared.session.query(sql, fmt)
            except StoreError:
                raise
            except Exception as exc:  # chdb raises ChdbError/RuntimeError with the engine message
                message = f"chdb {self.path}: {_first_line(exc)}"
                kind = classify_code(code_in(str(exc)))
                if kind == "transient":
                    raise TransientStoreError(message) from exc
                raise (StoreDataError if kind == "data" else StoreError)(message) from exc

    def _execute(self, sql: str) -> None:
        self._run(sql)

    @property
    def endpoint(self) -> str:
        return f"chdb {self.path}"

    def _query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        raw = self._run(sql, "JSONCompact").bytes()
        if not raw.strip():
            return [], []
        doc = json.loads(raw.decode("utf-8", errors="replace"))
        columns = [str(m["name"]) for m in doc["meta"]]
        types = [str(m["type"]) for m in doc["meta"]]
        rows = [tuple(_typed(v, t) for v, t in zip(values, types, strict=True))
                for values in doc["data"]]
        return columns, rows

    def _query_arrow(self, sql: str) -> pa.Table:
        import pyarrow as pa

        result = self._run(sql, "ArrowStream")
        if not result.size():
            return pa.table({})
        return pa.ipc.open_stream(pa.py_buffer(result.bytes())).read_all()

    def _insert(self, table: str, columns: list[str], rows: list[Row]) -> None:
        body = "\n".join(json.dumps(row, ensure_ascii=False, default=_json_default)
                         for row in rows)
        self._run(f"INSERT INTO {table} ({', '.join(columns)}) FORMAT JSONEachRow\n{body}\n")

    def _close(self) -> None:
        with _Shared.lock:
            if not self._open:
                return
            self._open = False
            _Shared.users -= 1
            if _Shared.users <= 0 and _Shared.session is not None:
                try:
                    _Shared.session.close()
                finally:
                    _Shared.session, _Shared.path, _Shared.current_db = None, None, None
                    _Shared.users = 0


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


_WRAPPER = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")


def _typed(value: Any, ch_type: str) -> Any:
    """Convert a JSON value to the Python type the native driver would return."""
    if value is None:
        return None
    while (m := _WRAPPER.match(ch_type)) is not None:
        ch_type = m.group(1)
    if ch_type.startswith("Array(") and isinstance(value, list):
        inner = ch_type[len("Array("):-1]
        return [_typed(v, inner) for v in value]
    if ch_type.startswith("DateTime64"):
        text = str(value)
        fmt = DATETIME_FORMAT + (".%f" if "." in text else "")
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    if ch_type.startswith("DateTime"):
        return datetime.strptime(str(value), DATETIME_FORMAT).replace(tzinfo=UTC)
    if ch_type in ("Date", "Date32"):
        return date.fromisoformat(str(value))
    if re.match(r"^U?Int(8|16|32|64|128|256)$", ch_type) and isinstance(value, str):
        return int(value)
    if ch_type.startswith("Float") and isinstance(value, str):
        return float(value)  # 'nan', 'inf' when quoted
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
