"""Every item-level error names the source, the feed or page URL, and the item's link (or its
position when it has none); each is counted and dead-lettered."""

from __future__ import annotations

import json
from pathlib import Path

from finsentry.ingest.crawler import Crawler

from .conftest import FixtureServer, Route, make_settings


def test_feed_item_errors_name_the_item(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/releases.rss", "errors_feed.rss", "application/rss+xml")
    url = server.url("/releases.rss")
    crawler = Crawler(make_settings(tmp_path, [{"kind": "rss", "name": "newsroom", "url": url}]))
    result = crawler.run_source("newsroom", deliver=False)
    assert result.new == 2 and result.failed == 2
    assert result.errors == [
        f"source newsroom: {url}: item https://newsroom.example/releases/acme-conference: "
        "published: unparseable time 'Monday morning' (Unknown string format: "
        "Monday morning)",
        f"source newsroom: {url}: item #2: item has no title and no text",
    ]
    dlq = [json.loads(r[3]) for r in crawler.state.pending(20)
           if r[1] == crawler.settings.kafka.dead_letter_topic]
    assert [e["reason"] for e in dlq] == [result.errors[1]]


def test_json_item_errors_name_link_or_position(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/posts.json", "errors_api.json", "application/json")
    url = server.url("/posts.json")
    spec = {"kind": "json", "name": "forum", "url": url, "items_path": "posts",
            "text_field": "text", "time_field": "ts",
            "url_template": "https://forum.example/p/{id}"}
    crawler = Crawler(make_settings(tmp_path, [spec]))
    result = crawler.run_source("forum", deliver=False)
    assert result.new == 1 and result.failed == 2 and result.dead_lettered == 2
    assert result.errors == [
        f"source forum: {url}: item #2: url_template field 'id' missing",
        f"source forum: {url}: item https://forum.example/p/q3: unparseable time "
        "'a while ago' in 'ts'",
    ]


def test_html_list_item_errors_name_the_position(tmp_path: Path,
                                                 server: FixtureServer) -> None:
    page = ("<html><body><ul>"
            "<li><a href='/n/1'>Acme Robotics wins contract</a><span>2024-05-06 09:00</span></li>"
            "<li><span>2024-05-06 09:05</span></li>"
            "<li><a href='/n/3'>Acme Robotics opens plant</a><span>soon</span></li>"
            "</ul></body></html>")
    server.add("/list", Route(body=page.encode(), content_type="text/html; charset=utf-8"))
    url = server.url("/list")
    spec = {"kind": "html", "name": "site", "url": url, "item_selector": "li",
            "time_selector": "span", "follow_links": False}
    crawler = Crawler(make_settings(tmp_path, [spec]))
    result = crawler.run_source("site", deliver=False)
    assert result.new == 2
    assert result.errors == [
        f"source site: {url}: item #2: item has neither link nor title",
        f"source site: {url}: item {server.url('/n/3')}: unparseable time 'soon' "
        "(Unknown string format: soon)",
    ]
