"""Store faults on real engines: any text reads back, refused values are isolated, errors sorted.

chdb's old row-per-line parsing broke on U+0085 (NEL); the server path refused a whole batch for
one out-of-range DateTime and the worker retried it forever. Both run on chdb and ClickHouse 18.16.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime

import pytest

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreDataError, StoreError
from finsentry.records import Document, ScoredDocument
from finsentry.store import ScoredSink, Store, open_store
from finsentry.store.faults import classify_code
from finsentry.streams.storing import BatchWriter
from tests.fixtures.clickhouse import ch_settings
from tests.store.factories import scored

SEPARATORS = "nel\u0085ls\u2028ps\u2029cr\rlf\nvt\x0bff\x0cfs\x1cgs\x1drs\x1eend"


def test_any_text_reads_back(store: Store) -> None:
    sink = ScoredSink(store)
    docs = [scored(i, text=f"{SEPARATORS} {i}") for i in range(3)]
    docs.append(_titled(scored(3), "title with NEL\u0085 and LS\u2028 and CR\r"))
    assert sink.write(docs) == 4
    rows = store.query("SELECT doc_id, title, text FROM scored_documents FINAL "
                       "WHERE run_id = 'run-1' ORDER BY doc_id")
    assert len(rows) == 4
    got = {r["doc_id"]: (r["title"], r["text"]) for r in rows}
    for doc in docs:
        assert got[doc.document.id] == (doc.document.title, doc.document.text)
    # the aggregate query an alert rule runs still works over such rows
    agg = store.query("SELECT count() AS n, any(title) AS t FROM scored_documents FINAL "
                      "WHERE run_id = 'run-1' AND title LIKE %(p)s", {"p": "%NEL%"})
    assert agg[0]["n"] == 1 and "\u0085" in agg[0]["t"]


def _titled(doc: ScoredDocument, title: str) -> ScoredDocument:
    return doc.model_copy(update={"document": doc.document.model_copy(update={"title": title})})


def _out_of_range(doc: ScoredDocument, year: int) -> ScoredDocument:
    """A document the contract now refuses, built past it to reach the store's own check."""
    bad = Document.model_construct(**{**dict(doc.document),
                                      "published_at": datetime(year, 1, 1, tzinfo=UTC)})
    return doc.model_copy(update={"document": bad})


@pytest.mark.parametrize("store_settings", ["server"], indirect=True)
def test_refused_documents_are_isolated_the_rest_stored(store: Store) -> None:
    docs = [scored(i) for i in range(40)]
    docs[7] = _out_of_range(docs[7], 2200)
    docs[31] = _out_of_range(docs[31], 1900)
    writer = BatchWriter(ScoredSink(store), threading.Event(), retry_max_wait_s=0.2)
    started = time.monotonic()
    written, culprits = writer.write(docs)
    assert time.monotonic() - started < 30
    assert written == 38
    assert sorted(d.document.id for d, _ in culprits) == sorted(
        [docs[7].document.id, docs[31].document.id])
    assert all("range" in reason or "53" in reason for _, reason in culprits), culprits
    n = store.query("SELECT count() AS n FROM scored_documents FINAL WHERE run_id = 'run-1'")
    assert n[0]["n"] == 38


def test_error_codes_are_sorted() -> None:
    assert classify_code(53) == "data" and classify_code(321) == "data"
    assert classify_code(210) == "transient" and classify_code(241) == "transient"
    assert classify_code(60) == "fatal" and classify_code(None) == "fatal"


@pytest.mark.parametrize("reply", [b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                                   None])
def test_a_port_that_is_not_clickhouse_fails_fast(reply: bytes | None) -> None:
    """Something listens but answers garbage (an HTTP port) or nothing at all (a Kafka port):
    a clear error in seconds, not minutes of retries."""
    held: list[socket.socket] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.recv(4096)
            if reply is None:
                held.append(conn)  # silent: keep the connection open, never answer
                continue
            conn.sendall(reply)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    settings: ClickHouseSettings = ch_settings(host="127.0.0.1", port=port, retry_attempts=8,
                                               retry_max_wait_s=10, connect_timeout_s=2)
    started = time.monotonic()
    try:
        with pytest.raises(StoreError) as err, open_store(settings) as store:
            store.query("SELECT 1")
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in held:
            conn.close()
    assert time.monotonic() - started < 15
    assert f"127.0.0.1:{port}" in str(err.value)
    assert not isinstance(err.value, StoreDataError)
