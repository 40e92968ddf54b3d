"""`finsentry ingest` commands and the APScheduler wiring (real scheduler, real HTTP)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from finsentry.cli import cli
from finsentry.ingest.crawler import Crawler
from finsentry.ingest.scheduler import build_scheduler, run_forever

from .conftest import FixtureServer, Route, make_settings


def _toml(tmp_path: Path, server: FixtureServer) -> Path:
    path = tmp_path / "finsentry.toml"
    path.write_text(f"""
[kafka]
bootstrap_servers = "127.0.0.1:9"

[ingest]
state_dir = "{tmp_path / 'state'}"
allow_networks = ["127.0.0.1/32"]
host_min_interval_s = 0.0
send_timeout_s = 1.0

[ingest.aliases]
MSFT = ["Microsoft"]
NVDA = ["Nvidia", "NVIDIA"]

[[ingest.sources]]
kind = "rss"
name = "newsroom"
url = "{server.url('/feed.atom')}"
interval_s = 600
""", encoding="utf-8")
    return path


def test_ingest_once_prints_what_it_got(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/feed.atom", "newsroom.atom", "application/atom+xml")
    config = _toml(tmp_path, server)
    runner = CliRunner()
    out = runner.invoke(cli, ["--config", str(config), "ingest", "once", "--source", "newsroom",
                              "--no-deliver"])
    assert out.exit_code == 0, out.output
    assert "Nvidia & Microsoft extend AI infrastructure partnership" in out.output
    assert "[MSFT:1,NVDA:1]" in out.output
    assert "source newsroom: fetched 2, new 2" in out.output
    status = runner.invoke(cli, ["--config", str(config), "ingest", "status"])
    snapshot = json.loads(status.output)
    assert snapshot["buffered"] == 2 and snapshot["sources"][0]["new"] == 2
    unknown = runner.invoke(cli, ["--config", str(config), "ingest", "once", "--source", "nope"])
    assert unknown.exit_code != 0 and "source nope: not configured" in str(unknown.exception)


def test_help_names_environment_variables() -> None:
    out = CliRunner().invoke(cli, ["ingest", "run", "--help"])
    assert "FINSENTRY_INGEST__STATE_DIR" in out.output
    assert "FINSENTRY_KAFKA__BOOTSTRAP_SERVERS" in out.output


def test_one_job_per_source_with_interval_jitter_and_no_overlap(tmp_path: Path,
                                                                server: FixtureServer) -> None:
    sources = [
        {"kind": "rss", "name": "a", "url": server.url("/a.rss"), "interval_s": 120,
         "jitter_s": 15},
        {"kind": "rss", "name": "b", "url": server.url("/b.rss"), "interval_s": 30,
         "jitter_s": 0},
        {"kind": "rss", "name": "off", "url": server.url("/c.rss"), "enabled": False},
    ]
    crawler = Crawler(make_settings(tmp_path, sources))
    scheduler = build_scheduler(crawler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"source:a", "source:b", "outbox:flush", "state:prune"}
    assert jobs["source:a"].trigger.interval.total_seconds() == 120
    assert jobs["source:a"].trigger.jitter == 15
    assert jobs["source:b"].trigger.jitter is None
    assert all(j.max_instances == 1 and j.coalesce for j in jobs.values())
    crawler.close()


def test_slow_source_runs_never_overlap(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/slow.atom", "newsroom.atom", "application/atom+xml")
    server.routes[("/slow.atom", None)].delay_s = 0.8
    server.add("/fast.rss", Route(body=(Path(__file__).parent / "fixtures" /
                                        "yahoo_headline.rss").read_bytes(),
                                  content_type="application/rss+xml"))
    sources = [
        {"kind": "rss", "name": "slow", "url": server.url("/slow.atom"), "interval_s": 0.1,
         "jitter_s": 0},
        {"kind": "rss", "name": "fast", "url": server.url("/fast.rss"), "interval_s": 600},
    ]
    crawler = Crawler(make_settings(tmp_path, sources, flush_interval_s=600, send_timeout_s=0.2))
    import threading

    stop = threading.Event()
    runner = threading.Thread(target=run_forever, args=(crawler, stop))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = {m["source"]: m["runs"] for m in crawler.state.metrics()}
        if runs.get("slow", 0) >= 3 and runs.get("fast", 0) >= 1:
            break
        time.sleep(0.2)
    stop.set()
    runner.join(30)
    metrics = {m["source"]: m for m in crawler.state.metrics()}
    assert metrics["slow"]["runs"] >= 3 and metrics["fast"]["new"] == 3
    assert metrics["slow"]["new"] == 2 and metrics["slow"]["duplicate"] >= 2
    # the slow feed was requested over and over, but never twice at the same time
    slow_hits = server.hits_for("/slow.atom")
    assert len(slow_hits) >= 3
    assert server.max_inflight["/slow.atom"] == 1
    crawler.close()
