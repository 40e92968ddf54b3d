"""Feed-proxy links resolved to the story's own address (one id across feeds), and HTML
entities unescaped in plain-text JSON APIs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from finsentry.ingest.crawler import Crawler
from finsentry.ingest.links import story_link

from .conftest import FixtureServer, make_settings

GLOBEX = "https://www.globewire.example/business/2024/05/06/globex-bank-fined.html"


def test_feedburner_links_resolve_and_one_story_has_one_id(tmp_path: Path,
                                                           server: FixtureServer) -> None:
    server.add_file("/wire.rss", "feedburner_wire.rss", "application/rss+xml")
    server.add_file("/portal.rss", "portal_business.rss", "application/rss+xml")
    crawler = Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "globewire", "url": server.url("/wire.rss")},
        {"kind": "rss", "name": "portal", "url": server.url("/portal.rss")}]))
    wire, portal = crawler.run_all(deliver=False)
    assert wire.errors == [] and wire.new == 2
    docs = {d.title: d for d in wire.documents}
    globex = docs["Globex Bank fined $200 million over transfer monitoring"]
    # `feedburner:origLink`, without the proxy's utm_* parameters
    assert globex.url == GLOBEX
    assert globex.published_at == datetime(2024, 5, 6, 13, 10, tzinfo=UTC)
    # no origLink: the permalink guid is the story's address, not the ~r/ redirect
    initech = docs["Initech to cut 5% of workforce"]
    assert initech.url == ("https://www.globewire.example/business/2024/05/06/"
                           "initech-job-cuts.html")
    # the portal syndicates the same story with its own tracking parameters: same id
    assert portal.new == 0 and portal.duplicate == 1 and portal.errors == []


def test_story_link_rules() -> None:
    redirect = "https://feeds.feedburner.com/~r/Feed/~3/abc/story.html"
    assert story_link(redirect, None, None) == redirect  # nothing better known: keep it
    assert story_link(redirect, "https://x.example/s?id=7&utm_source=fb", None) == \
        "https://x.example/s?id=7"
    assert story_link("https://x.example/s?ncid=yahoo&p=2#top", None, None) == \
        "https://x.example/s?p=2"
    assert story_link(None, None, "https://x.example/p") == "https://x.example/p"


def test_entities_unescaped_in_plain_json_text(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/api/2/streams/symbol/T.json", "stocktwits_entities.json",
                    "application/json")
    spec = {"kind": "json", "name": "stocktwits-t",
            "url": server.url("/api/2/streams/symbol/T.json"), "items_path": "messages",
            "text_field": "body", "time_field": "created_at",
            "url_template": "https://stocktwits.com/{user.username}/message/{id}",
            "tickers_field": "symbols", "tickers_key": "symbol", "language": "en"}
    crawler = Crawler(make_settings(tmp_path, [spec], aliases={}))
    result = crawler.run_source("stocktwits-t", deliver=False)
    assert result.errors == [] and result.new == 2
    docs = {d.url: d for d in result.documents}
    verizon = docs["https://stocktwits.com/yield_yuri/message/575000002"]
    assert verizon.text == ("AT&T & Verizon both at 52-week lows \u2013 it's a \"buy\" if the "
                            "dividend holds > 6%")
    assert [(t.symbol, t.relevance) for t in verizon.tickers] == [("T", 0.9), ("VZ", 0.9)]
    assert verizon.language == "en"
    fish = docs["https://stocktwits.com/lunch_larry/message/575000001"]
    assert fish.text == "Fish & chips <3 not a stock tip" and fish.tickers == []
