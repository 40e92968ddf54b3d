"""Helpers for the end-to-end stream tests: real broker, real `finsentry worker` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from finsentry.config import ClickHouseSettings, KafkaSettings, Settings
from finsentry.records import Document, TickerMention

TICKERS = ["AAPL", "MSFT", "JPM", "XOM", "TSLA", "BAC"]
PHRASES = [
    "{t} beats earnings estimates and raises guidance",
    "{t} shares slump after regulators open an investigation",
    "{t} schedules its annual shareholder meeting",
    "{t} announces a record buyback programme",
    "{t} cuts outlook as demand weakens",
]


def make_documents(n: int, tag: str = "") -> list[Document]:
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    docs = []
    for i in range(n):
        t = TICKERS[i % len(TICKERS)]
        text = PHRASES[i % len(PHRASES)].format(t=t) + f" (item {i}{tag})"
        docs.append(Document.create(source="test-wire", title="", text=text,
                                    url=f"https://news.example.com/{tag}/{i}",
                                    published_at=start + timedelta(seconds=7 * i),
                                    language="en", tickers=[TickerMention(symbol=t)]))
    return docs


def produce(kafka: KafkaSettings, values: Iterable[bytes], keys: Iterable[bytes] | None = None,
            topic: str | None = None) -> int:
    # gzip: a 5 MB document travels as a small compressed batch, as a real producer would send it
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                             linger_ms=10, max_request_size=8 * 1024 * 1024,
                             compression_type="gzip")
    n = 0
    try:
        key_list = list(keys) if keys is not None else None
        futures = []
        for i, value in enumerate(values):
            key = key_list[i] if key_list is not None else str(i % 17).encode()
            futures.append(producer.send(topic or kafka.raw_topic, key=key, value=value))
            n += 1
        producer.flush()
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close()
    return n


def consume_all(kafka: KafkaSettings, topic: str, expect: int, timeout: float = 60) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=f"check-{uuid.uuid4().hex[:6]}",
                             fetch_max_bytes=16 * 1024 * 1024,
                             max_partition_fetch_bytes=16 * 1024 * 1024)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(json.loads(r.value) for r in records)
    finally:
        consumer.close()
    return out


def settings_for(kafka: KafkaSettings, ch: ClickHouseSettings, **worker: Any) -> Settings:
    tag = uuid.uuid4().hex[:6]
    worker.setdefault("data_dir", str(Path(tempfile.gettempdir()) / "finsentry-tests-faust"))
    return Settings(
        kafka=kafka, clickhouse=ch,
        worker={"app_id": f"test-worker-{tag}", "run_id": f"test-{tag}", "batch_size": 64,
                "batch_max_wait_s": 0.5, **worker},
        health={"worker_port": 0, "ingest_port": 0, "alerts_port": 0, "check_interval_s": 1.0},
    )


def prepare_pipeline(kafka: KafkaSettings, ch: ClickHouseSettings, **worker: Any) -> Settings:
    """Settings for one test run, with its topics created and its store migrated."""
    from finsentry.kafka_admin import ensure_topics
    from finsentry.store import migrate, open_store

    settings = settings_for(kafka, ch, **worker)
    ensure_topics(settings.kafka)
    with open_store(settings.clickhouse) as store:
        migrate(store)
    return settings


def write_config(settings: Settings, path: Path) -> Path:
    """The settings as a TOML file for a `finsentry --config` subprocess (secrets included)."""
    import tomli_w

    data = settings.model_dump(mode="json")
    data["clickhouse"]["password"] = settings.clickhouse.password.get_secret_value()
    data["alerts"]["smtp_password"] = settings.alerts.smtp_password.get_secret_value()
    path.write_bytes(tomli_w.dumps(_no_none(data)).encode())
    return path


def _no_none(value: Any) -> Any:
    """TOML has no null: unset settings are left out (nested ones too, e.g. in sources)."""
    if isinstance(value, dict):
        return {k: _no_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_none(v) for v in value]
    return value


def feed_items(n: int) -> bytes:
    """An RSS 2.0 feed with items 0..n-1 (newest first), as a wire service would publish."""
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    items = []
    for i in reversed(range(n)):
        t = TICKERS[i % len(TICKERS)]
        title = PHRASES[i % len(PHRASES)].format(t=t)
        when = (start + timedelta(seconds=11 * i)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        items.append(
            f"<item><title>{title} (wire {i})</title>"
            f"<link>https://wire.example.com/story/{i}</link>"
            f"<guid isPermaLink=\"false\">wire-{i}</guid><pubDate>{when}</pubDate>"
            f"<description>Reporters covering {t} said on the record that story number {i} "
            f"of this wire moved the shares in early trading.</description></item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>Test wire</title><link>https://wire.example.com/</link>"
            "<description>generated</description>" + "".join(items) +
            "</channel></rss>").encode()


def with_crawler(settings: Settings, feed_url: str, state_dir: Path) -> Settings:
    """The settings plus one RSS source polled every second on 127.0.0.1, quick to retry."""
    from finsentry.config import IngestSettings

    ingest = IngestSettings.model_validate({
        "state_dir": state_dir, "allow_networks": ["127.0.0.1/32"],
        "host_min_interval_s": 0.0, "backoff_base_s": 0.01, "backoff_max_s": 0.05,
        "send_timeout_s": 2.0, "flush_interval_s": 1.0,
        "user_agent": "finsentry-tests/0.1 (ops@example.com)",
        "sources": [{"kind": "rss", "name": "wire", "url": feed_url, "interval_s": 1.0,
                     "jitter_s": 0.0}],
    })
    return settings.model_copy(update={"ingest": ingest})


def start_crawler(config: Path, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`finsentry ingest run` as its own process (the crawler a deployment runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "finsentry", "--config", str(config), "ingest", "run",
         "--log-level", "WARNING", *args],
        stdout=out, stderr=subprocess.STDOUT, env=env,
    )


def start_worker(config: Path, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "finsentry", "--config", str(config), "worker",
         "--log-level", "WARNING", *args],
        stdout=out, stderr=subprocess.STDOUT, env=env,
    )


def health_url(log: Path, timeout: float = 120) -> str:
    """The /healthz URL a `finsentry worker` printed (it binds a free port in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("health endpoint: "):
                    return line.split(": ", 1)[1].strip()
        time.sleep(0.2)
    raise AssertionError(f"no health endpoint line in {log}")


def health_status(url: str) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def worker_messages(log: Path) -> int:
    """Messages a finished worker reported on its last line."""
    for line in reversed(log.read_text().splitlines()):
        if "worker " in line and " messages," in line:
            return int(line.rsplit(": ", 1)[1].split()[0])
    raise AssertionError(f"no summary line in {log}:\n{log.read_text()[-2000:]}")
