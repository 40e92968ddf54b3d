"""Sorting ClickHouse failures, and logging an outage with bounded noise.

Both transports report failures as error codes (clickhouse-driver's `code`, chdb's
`Code: N.` text). Three kinds matter to a writer:

- transient (connection lost, timeout, server overloaded): retry with backoff;
- data (a value out of range, too large, unparsable): the rows are at fault, so a writer bisects
  the batch and dead-letters only the culprits;
- anything else (unknown table, bad credentials, syntax): a bug or misconfiguration, raised.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Literal

Kind = Literal["transient", "data", "fatal"]

TRANSIENT_CODES = frozenset({
    159,  # TIMEOUT_EXCEEDED
    160,  # TOO_SLOW
    173,  # CANNOT_ALLOCATE_MEMORY
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    279,  # ALL_CONNECTION_TRIES_FAILED
    32,  # ATTEMPT_TO_READ_AFTER_EOF
    394,  # QUERY_WAS_CANCELLED
})
DATA_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    25, 26, 27,  # CANNOT_PARSE_ESCAPE_SEQUENCE / QUOTED_STRING / INPUT_ASSERTION_FAILED
    38, 41,  # CANNOT_PARSE_DATE / DATETIME
    53,  # TYPE_MISMATCH (clickhouse-driver: a value its column type cannot hold)
    69, 70, 72,  # ARGUMENT_OUT_OF_BOUND / CANNOT_CONVERT_TYPE / CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    128, 131,  # TOO_LARGE_ARRAY_SIZE / TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DOESNT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    376,  # CANNOT_PARSE_UUID
})
_CODE = re.compile(r"Code:\s*(\d+)")


def classify_code(code: int | None) -> Kind:
    if code is None:
        return "fatal"
    if code in TRANSIENT_CODES:
        return "transient"
    if code in DATA_CODES:
        return "data"
    return "fatal"


def code_in(text: str) -> int | None:
    """The ClickHouse error code quoted in an engine message (`Code: 53. DB::Exception…`)."""
    match = _CODE.search(text)
    return int(match.group(1)) if match else None


class OutageLog:
    """One warning when failures start, one when they end, a summary every `every_s` between.

    A 60 s outage retried every few hundred milliseconds would otherwise log a line per attempt.
    Thread-safe: the worker's executor thread and a health probe may both report.
    """

    def __init__(self, what: str, logger: logging.Logger, every_s: float = 30.0) -> None:
        self.what = what
        self.log = logger
        self.every_s = every_s
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.failures = 0
        self.total_failures = 0  # over the process lifetime (a metric)
        self._last_summary = 0.0
        self.last_error = ""

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: BaseException | str, context: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            self.failures += 1
            self.total_failures += 1
            self.last_error = str(error).splitlines()[0][:300] if str(error) else repr(error)
            if self.down_since is None:
                self.down_since = self._last_summary = now
                self.log.warning("%s unavailable%s (%s); retrying with backoff", self.what,
                                 f" during {context}" if context else "", self.last_error)
            elif now - self._last_summary >= self.every_s:
                self._last_summary = now
                self.log.warning("%s still unavailable after %.0fs (%d failed attempts; last: %s)",
                                 self.what, now - self.down_since, self.failures, self.last_error)

    def recovered(self) -> None:
        with self._lock:
            if self.down_since is None:
                return
            took = time.monotonic() - self.down_since
            self.log.warning("%s available again after %.1fs (%d failed attempts)", self.what,
                             took, self.failures)
            self.down_since, self.failures = None, 0
