"""Zone-less times in the source's zone, unparseable times logged with the raw string."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from finsentry.ingest.crawler import Crawler
from finsentry.ingest.parsing import parse_time_loose

from .conftest import FixtureServer, make_settings


def test_naive_feed_times_read_in_source_zone(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/kuaixun.xml", "cn_times.rss", "application/rss+xml")
    url = server.url("/kuaixun.xml")
    crawler = Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "kuaixun", "url": url, "timezone": "Asia/Shanghai"}]))
    result = crawler.run_source("kuaixun", deliver=False)
    assert result.new == 4
    times = {d.url: d.published_at for d in result.documents}
    # '2018-09-18 14:38:10' is Shanghai time, not UTC
    assert times["http://kuaixun.example.cn/2018/09/18/a1.html"] == datetime(
        2018, 9, 18, 6, 38, 10, tzinfo=UTC)
    # an explicit offset wins over the source's zone
    assert times["http://kuaixun.example.cn/2018/09/18/a2.html"] == datetime(
        2018, 9, 18, 6, 50, tzinfo=UTC)
    # 'CST' on a source in Shanghai is China Standard Time (feedparser would say US Central)
    assert times["http://kuaixun.example.cn/2018/09/18/a4.html"] == datetime(
        2018, 9, 18, 1, 15, tzinfo=UTC)
    # '刚刚' ("just now") is logged and counted with source, feed URL, item and raw string;
    # the story is kept with the fetch time, marked as estimated
    assert result.errors == [
        f"source kuaixun: {url}: item http://kuaixun.example.cn/2018/09/18/a3.html: published: "
        "unparseable time '刚刚' (Unknown string format: 刚刚)"]
    assert result.failed == 1
    estimated = next(d for d in result.documents if d.url and d.url.endswith("a3.html"))
    assert estimated.metadata["published_estimated"] is True
    assert all(d.language == "zh" for d in result.documents)


def test_default_zone_is_utc(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/kuaixun.xml", "cn_times.rss", "application/rss+xml")
    crawler = Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "kuaixun", "url": server.url("/kuaixun.xml")}]))
    docs = crawler.run_source("kuaixun", deliver=False).documents
    first = next(d for d in docs if d.url and d.url.endswith("a1.html"))
    assert first.published_at == datetime(2018, 9, 18, 14, 38, 10, tzinfo=UTC)


def test_time_inside_mixed_text() -> None:
    assert parse_time_loose("2019-09-26 12:11 来源：新浪财经", "%Y-%m-%d %H:%M",
                            "Asia/Shanghai") == datetime(2019, 9, 26, 4, 11, tzinfo=UTC)
    assert parse_time_loose("发布时间：2018年9月18日 14:38 编辑：王五", None,
                            "Asia/Shanghai") == datetime(2018, 9, 18, 6, 38, tzinfo=UTC)
    with pytest.raises(ValueError, match="unparseable time '昨天 下午'"):
        parse_time_loose("昨天 下午", None, "Asia/Shanghai")


def test_unknown_zone_is_a_config_error() -> None:
    from pydantic import ValidationError

    from finsentry.config import Settings

    with pytest.raises(ValidationError, match="unknown IANA time zone 'Asia/Peking'"):
        Settings.model_validate({"ingest": {"sources": [
            {"kind": "rss", "name": "x", "url": "https://x.example/feed",
             "timezone": "Asia/Peking"}]}})
