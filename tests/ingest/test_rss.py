"""RSS 2.0, Atom and SEC EDGAR Atom feeds over real HTTP, with conditional GET."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from finsentry.ingest.crawler import Crawler

from .conftest import FixtureServer, make_settings


def _crawler(tmp_path: Path, server: FixtureServer, **source: object) -> Crawler:
    spec = {"kind": "rss", "name": "feed", **source}
    return Crawler(make_settings(tmp_path, [spec]))


def test_rss_items_normalised(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/rss/headline", "yahoo_headline.rss", "application/rss+xml",
                    etag='"v1-abc"')
    crawler = _crawler(tmp_path, server, url=server.url("/rss/headline?s=AAPL"))
    result = crawler.run_source("feed", deliver=False)
    assert result.errors == [] and result.fetched == 3 and result.new == 3
    by_title = {d.title: d for d in result.documents}
    apple = by_title["Apple unveils record $110 billion buyback as iPhone sales beat estimates"]
    assert apple.published_at == datetime(2024, 5, 2, 21, 52, 30, tzinfo=UTC)
    assert apple.text.startswith("Apple Inc. reported fiscal second-quarter revenue")
    assert "<p>" not in apple.text and "Shares rose 7% in extended trading." in apple.text
    assert apple.language == "en"
    assert apple.tickers[0].symbol == "AAPL" and apple.tickers[0].relevance == 1.0
    # tracking parameters are neither part of the identity nor of the document's address
    assert apple.url == "https://finance.yahoo.com/news/apple-record-buyback-215230512.html"
    assert apple.metadata["guid"] == "5d1e4f0a-3c55-3a61-9d4e-6f9b8d2b7c10"
    market = by_title["Stock market today: Dow, S&P 500 rally after Fed holds rates"]
    symbols = {t.symbol: t.relevance for t in market.tickers}
    assert symbols["MSFT"] == 0.7 and symbols["NVDA"] == 0.7  # lead of the body, not headline
    video = by_title["Analysts weigh Apple's China exposure ahead of earnings"]
    assert video.text == video.title  # item without description: the title is the text
    assert video.published_at == datetime(2024, 5, 2, 20, 15, tzinfo=UTC)  # -0400 to UTC
    # a real User-Agent went out with every request, robots.txt was consulted first
    assert server.hits[0].path == "/robots.txt"
    assert all(h.headers["user-agent"].startswith("finsentry-tests/") for h in server.hits)


def test_second_poll_conditional_get_emits_nothing(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/feed.rss", "yahoo_headline.rss", "application/rss+xml", etag='"v1"',
                    last_modified="Thu, 02 May 2024 22:00:00 GMT")
    crawler = _crawler(tmp_path, server, url=server.url("/feed.rss"))
    assert crawler.run_source("feed", deliver=False).new == 3
    second = crawler.run_source("feed", deliver=False)
    assert second.not_modified and second.fetched == 0 and second.new == 0
    last = server.hits_for("/feed.rss")[-1]
    assert last.status == 304
    assert last.headers["if-none-match"] == '"v1"'
    assert last.headers["if-modified-since"] == "Thu, 02 May 2024 22:00:00 GMT"
    metrics = {m["source"]: m for m in crawler.write_metrics()["sources"]}
    assert metrics["feed"]["new"] == 3 and metrics["feed"]["not_modified"] == 1
    crawler.close()


def test_atom_feed(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/feed.atom", "newsroom.atom", "application/atom+xml; charset=utf-8")
    crawler = _crawler(tmp_path, server, url=server.url("/feed.atom"))
    result = crawler.run_source("feed", deliver=False)
    assert result.new == 2 and not result.errors
    doc = next(d for d in result.documents if "partnership" in d.title)
    assert doc.title == "Nvidia & Microsoft extend AI infrastructure partnership"
    assert "trackView" not in doc.text  # scripts never reach the text
    assert doc.published_at == datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
    assert [t.symbol for t in doc.tickers[:2]] == ["MSFT", "NVDA"]
    assert doc.language == "en" and doc.metadata["author"] == "Dana Whitfield"
    # fragment dropped from the identity: same id as the bare URL
    from finsentry.records import document_id

    assert doc.id == document_id(doc.url.split("#")[0] if doc.url else "", "", "")
    outlook = next(d for d in result.documents if "outlook" in d.title.lower())
    assert outlook.published_at == datetime(2024, 5, 2, 17, 45, tzinfo=UTC)


def test_edgar_filing_feed(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/cgi-bin/browse-edgar", "edgar_current_8k.atom",
                    "application/atom+xml")  # EDGAR sends no charset; the XML says ISO-8859-1
    crawler = _crawler(tmp_path, server, edgar=True,
                       url=server.url("/cgi-bin/browse-edgar?action=getcurrent&type=8-K"
                                      "&company=&dateb=&owner=include&start=0&count=40"
                                      "&output=atom"))
    result = crawler.run_source("feed", deliver=False)
    assert result.new == 2 and not result.errors
    apple = next(d for d in result.documents if "Apple" in d.title)
    assert apple.metadata["form_type"] == "8-K"
    assert apple.metadata["cik"] == "0000320193"
    assert apple.metadata["accession_number"] == "0000320193-24-000069"
    assert apple.tickers[0].symbol == "AAPL" and apple.tickers[0].relevance == 1.0  # CIK alias
    assert "Item 2.02: Results of Operations" in apple.text
    assert apple.published_at == datetime(2024, 5, 2, 20, 30, 41, tzinfo=UTC)
    other = next(d for d in result.documents if "Fictive" in d.title)
    assert other.metadata["company"] == "Société Fictive Holdings Corp"
    assert other.tickers == []


def test_malformed_feed_counted_and_dead_lettered(tmp_path: Path,
                                                  server: FixtureServer) -> None:
    server.add_file("/broken.rss", "broken_feed.rss", "application/rss+xml")
    server.add_file("/good.rss", "newsroom.atom", "application/atom+xml")
    settings = make_settings(tmp_path, [
        {"kind": "rss", "name": "broken", "url": server.url("/broken.rss")},
        {"kind": "rss", "name": "good", "url": server.url("/good.rss")},
    ])
    crawler = Crawler(settings)
    broken, good = crawler.run_all(deliver=False)
    assert broken.new == 0 and broken.failed >= 1 and broken.dead_lettered >= 1
    assert "source broken" in broken.errors[0] and "/broken.rss" in broken.errors[0]
    assert "malformed feed" in broken.errors[0]
    assert good.new == 2 and good.failed == 0  # the crawler kept going
    rows = crawler.state.pending(100)
    dlq = [r for r in rows if r[1] == settings.kafka.dead_letter_topic]
    envelopes = [json.loads(r[3]) for r in dlq]
    assert all(e["stage"] == "ingest" and e["topic"] == "source:broken" for e in envelopes)
    envelope = next(e for e in envelopes if "malformed feed" in e["reason"])
    assert envelope["payload"].startswith("<?xml")  # the raw page is kept for debugging
    metrics = {m["source"]: m for m in crawler.write_metrics()["sources"]}
    assert metrics["broken"]["failed"] >= 1 and metrics["broken"]["last_error"]
    assert metrics["good"]["last_success"] is not None
