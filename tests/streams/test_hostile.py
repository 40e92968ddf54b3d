"""10,000 generated hostile inputs mixed into valid traffic, through one real worker process.

Inputs are generated offline with hypothesis strategies (random bytes, wrong types, huge and
deeply nested fields, control characters, HTML/script, SQL fragments, invalid UTF-8, dates out
of range, JSON that is not an object), then produced in bulk. The record contract is the oracle:
what it rejects must be dead-lettered with a reason, everything else stored exactly once (some
hostile inputs are valid documents with hostile text, and must be stored like any other).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from finsentry.config import ClickHouseSettings, KafkaSettings
from finsentry.errors import RecordError
from finsentry.records import decode_document, document_id
from tests.streams.helpers import (
    consume_all,
    make_documents,
    prepare_pipeline,
    produce,
    start_worker,
    worker_messages,
    write_config,
)
from tests.streams.test_pipeline import _stored

N_HOSTILE = 10_000
N_VALID = 500  # one valid document, then twenty hostile inputs
TEMPLATE: dict[str, Any] = json.loads(make_documents(1, "template")[0].to_json())
FIELDS = sorted(TEMPLATE)
SNIPPETS = ["<script>alert(1)</script>", "'; DROP TABLE scored_documents; --", "\x1b[2J\x1b[31m",
            "Bcc: victim@example.com\r\n", "\u0085\u2028\u2029", "%(run_id)s {x} ${y}",
            "\x00\x07\x08", "\u202egnp.exe", "<img src=x onerror=alert(1)>"]
nasty = st.one_of(st.text(min_size=1, max_size=200), st.sampled_from(SNIPPETS),
                  st.lists(st.sampled_from(SNIPPETS), min_size=1, max_size=4).map("".join))


def _valid(raw: bytes) -> bool:
    try:
        decode_document(raw)
    except RecordError:
        return False
    return True


def _doc(**changes: Any) -> bytes:
    return json.dumps({**TEMPLATE, **changes}, ensure_ascii=False).encode("utf-8")


@st.composite
def hostile_valid(draw: st.DrawFn) -> bytes:
    title, text, source = draw(nasty), draw(nasty), draw(nasty)
    text = text if text.strip() else "x" + text
    url = f"https://h.example.com/{draw(st.integers(0, 10**9))}"
    return _doc(id=document_id(url, title, text), url=url, title=title[:2048], text=text,
                source=source[:128], entities=[draw(nasty)[:256]],
                tickers=[{"symbol": draw(nasty)[:32], "relevance": 0.5}],
                metadata={draw(nasty): draw(nasty)})


@st.composite
def huge(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(["title", "metadata", "entities", "tickers", "text", "entity"]))
    if field == "title":
        return _doc(title="T" * draw(st.integers(2049, 6000)))
    if field == "metadata":
        return _doc(metadata={"blob": "m" * draw(st.integers(66_000, 90_000))})
    if field == "entities":
        return _doc(entities=["e"] * draw(st.integers(257, 2000)))
    if field == "entity":
        return _doc(entities=["e" * draw(st.integers(257, 5000))])
    if field == "tickers":
        return _doc(tickers=[{"symbol": "T", "relevance": 1.0}] * draw(st.integers(65, 500)))
    return _doc(text="x" * draw(st.integers(100_001, 101_000)))


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    value: Any = draw(st.integers())
    for _ in range(draw(st.integers(17, 400))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return _doc(metadata={"deep": value})


@st.composite
def bad_date(draw: st.DrawFn) -> bytes:
    year = draw(st.one_of(st.integers(1, 1969), st.integers(2106, 9999)))
    tz = draw(st.sampled_from(["Z", "+14:00", "-12:00"]))
    field = draw(st.sampled_from(["published_at", "fetched_at"]))
    return _doc(**{field: f"{year:04d}-{draw(st.integers(1, 12)):02d}-01T00:00:00{tz}"})


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    raw = _doc(text="PLACEHOLDER")
    junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
    return raw.replace(b"PLACEHOLDER", b"ok " + junk + b" ko")


wrong_type = st.tuples(
    st.sampled_from(FIELDS),
    st.one_of(st.integers(), st.booleans(), st.none(), st.floats(allow_nan=True),
              st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                   st.integers(), max_size=3)),
).map(lambda fv: _doc(**{fv[0]: fv[1]})).filter(lambda raw: not _valid(raw))
json_not_object = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda children: st.lists(children, max_size=4), max_leaves=10,
).map(lambda v: json.dumps(v).encode())

HOSTILE = st.one_of(st.binary(max_size=400), wrong_type, huge(), nested(), bad_date(),
                    invalid_utf8(), hostile_valid(), json_not_object)


def generate_hostile(n: int) -> list[bytes]:
    """n inputs from HOSTILE, generated offline in one hypothesis run (no shrinking, no DB)."""
    out: list[bytes] = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(HOSTILE)
    def collect(value: bytes) -> None:
        out.append(value)

    while len(out) < n:
        collect()
    return out[:n]


def _oracle(values: list[bytes]) -> tuple[set[str], int]:
    """(ids of valid documents, number the contract rejects)."""
    ids: set[str] = set()
    bad = 0
    for value in values:
        try:
            ids.add(decode_document(value).id)
        except RecordError:
            bad += 1
    return ids, bad


@pytest.mark.timeout(900)
@pytest.mark.parametrize("store_settings", ["chdb"], indirect=True)
def test_10000_hostile_inputs(kafka_settings: KafkaSettings, store_settings: ClickHouseSettings,
                              tmp_path: Path) -> None:
    started = time.monotonic()
    hostile = generate_hostile(N_HOSTILE)
    generated_s = time.monotonic() - started
    valid = [d.to_json() for d in make_documents(N_VALID, "steady")]
    values: list[bytes] = []  # one valid document, then twenty hostile inputs, and so on
    step = N_HOSTILE // N_VALID
    for i, good in enumerate(valid):
        values.append(good)
        values.extend(hostile[i * step:(i + 1) * step])
    good_ids, n_bad = _oracle(values)
    assert n_bad > N_HOSTILE // 2, "the strategies should mostly produce invalid inputs"

    settings_ = prepare_pipeline(kafka_settings, store_settings, batch_size=128)
    config = write_config(settings_, tmp_path / "finsentry.toml")
    produce(settings_.kafka, values)
    log = tmp_path / "worker.log"
    proc = start_worker(config, "--expect", str(len(values)), "--max-seconds", "780", log=log)
    assert proc.wait(800) == 0, log.read_text()[-3000:]
    assert worker_messages(log) == len(values), "the worker restarted or missed messages"
    letters = consume_all(settings_.kafka, settings_.kafka.dead_letter_topic, n_bad, timeout=120)
    got = _stored(settings_)
    print(f"FIGURES hostile-10000: inputs={len(values)}, invalid={n_bad}, "
          f"valid_ids={len(good_ids)}, lost={len(good_ids) - int(str(got['ids']))}, "
          f"duplicated={int(str(got['n'])) - int(str(got['ids']))}, "
          f"dead_lettered={len(letters)}, generate_s={generated_s:.0f}, "
          f"total_s={time.monotonic() - started:.0f}")
    assert len(letters) == n_bad
    assert all(env["reason"] and env["payload_sha256"] for env in letters)
    assert got["ids"] == len(good_ids) and got["n"] == len(good_ids), got
