"""JSON listing APIs: Reddit's `after` cursor and StockTwits' `cursor.max`, bad payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finsentry.ingest.crawler import Crawler

from .conftest import FixtureServer, make_settings

JSON = "application/json; charset=UTF-8"


def reddit_spec(server: FixtureServer, name: str = "reddit", path: str = "/r/stocks/new.json",
                **extra: Any) -> dict[str, Any]:
    return {
        "kind": "json", "name": name, "url": server.url(path), "params": {"limit": "100"},
        "items_path": "data.children", "item_path": "data", "title_field": "title",
        "text_field": "selftext", "url_field": "permalink",
        "url_base": "https://www.reddit.com", "time_field": "created_utc",
        "time_format": "epoch", "cursor_path": "data.after", "cursor_param": "after",
        "metadata_fields": {"subreddit": "subreddit", "flair": "link_flair_text",
                            "score": "score", "link": "url"},
        **extra,
    }


def stocktwits_spec(server: FixtureServer) -> dict[str, Any]:
    return {
        "kind": "json", "name": "stocktwits-aapl",
        "url": server.url("/api/2/streams/symbol/AAPL.json"),
        "items_path": "messages", "text_field": "body", "time_field": "created_at",
        "url_template": "https://stocktwits.com/{user.username}/message/{id}",
        "tickers_field": "symbols", "tickers_key": "symbol",
        "metadata_fields": {"sentiment": "entities.sentiment.basic", "user": "user.username"},
        "cursor_path": "cursor.max", "cursor_param": "max", "more_path": "cursor.more",
        "language": "en",
    }


def test_reddit_listing_follows_after_cursor(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/r/stocks/new.json", "reddit_stocks_new_p1.json", JSON,
                    query={"limit": "100"})
    server.add_file("/r/stocks/new.json", "reddit_stocks_new_p2.json", JSON,
                    query={"limit": "100", "after": "t3_1cim9qz"})
    crawler = Crawler(make_settings(tmp_path, [reddit_spec(server)]))
    result = crawler.run_source("reddit", deliver=False)
    assert result.errors == [] and result.new == 3
    assert [h.status for h in server.hits_for("/r/stocks/new.json")] == [200, 200]
    docs = {d.metadata["source_id"]: d for d in result.documents}
    post = docs["1cio4kd"]
    assert post.url == ("https://www.reddit.com/r/stocks/comments/1cio4kd/"
                        "aapl_q2_earnings_beat_on_revenue_and_eps_record/")
    assert post.published_at == datetime.fromtimestamp(1714687382, UTC)
    assert post.tickers[0].symbol == "AAPL" and post.tickers[0].relevance == 1.0
    assert post.metadata["flair"] == "Company Discussion" and post.language == "en"
    link_post = docs["1cim9qz"]  # link post: empty selftext, the title is the text
    assert link_post.text == link_post.title and link_post.tickers[0].symbol == "MSFT"
    assert docs["1cikb7u"].published_at.microsecond == 500000  # fractional epoch kept
    # next poll: page 1 holds only known posts, so paging stops there
    again = crawler.run_source("reddit", deliver=False)
    assert again.new == 0 and again.duplicate == 2
    assert len(server.hits_for("/r/stocks/new.json")) == 3


def test_stocktwits_stream_max_cursor(tmp_path: Path, server: FixtureServer) -> None:
    path = "/api/2/streams/symbol/AAPL.json"
    server.add_file(path, "stocktwits_aapl_p1.json", JSON, query={})
    server.add_file(path, "stocktwits_aapl_p2.json", JSON, query={"max": "573012120"})
    crawler = Crawler(make_settings(tmp_path, [stocktwits_spec(server)]))
    result = crawler.run_source("stocktwits-aapl", deliver=False)
    # page 2 repeats the boundary message (max is inclusive): it is an exact duplicate
    assert result.fetched == 5 and result.new == 4 and result.duplicate == 1
    assert len(server.hits_for(path)) == 2  # cursor.more = false stops the paging
    first = next(d for d in result.documents if d.metadata["source_id"] == 573015233)
    assert first.url == "https://stocktwits.com/BuybackBandit/message/573015233"
    assert first.metadata["sentiment"] == "Bullish"
    assert first.published_at == datetime(2024, 5, 2, 20, 41, 9, tzinfo=UTC)
    both = next(d for d in result.documents if d.metadata["source_id"] == 573013871)
    assert {t.symbol for t in both.tickers} == {"AAPL", "MSFT"}
    assert "sentiment" not in both.metadata  # null sentiment is dropped, not "None"


def test_truncated_json_is_counted_and_crawler_keeps_going(tmp_path: Path,
                                                           server: FixtureServer) -> None:
    server.add_file("/bad.json", "truncated.json", JSON)
    server.add_file("/r/stocks/new.json", "reddit_stocks_new_p2.json", JSON)
    settings = make_settings(tmp_path, [reddit_spec(server, "bad", "/bad.json"),
                                        reddit_spec(server)])
    crawler = Crawler(settings)
    bad, good = crawler.run_all(deliver=False)
    assert bad.new == 0 and bad.failed == 1 and bad.dead_lettered == 1
    assert "source bad" in bad.errors[0] and "/bad.json" in bad.errors[0]
    assert "invalid JSON" in bad.errors[0]
    assert good.new == 1


def test_item_missing_fields_goes_to_dead_letter(tmp_path: Path, server: FixtureServer) -> None:
    from .conftest import Route

    body = (b'{"cursor": {"more": false, "max": null}, "messages": ['
            b'{"id": 1, "body": "ok $AAPL", "created_at": "2024-05-02T20:00:00Z",'
            b' "user": {"username": "a"}},'
            b'{"id": 2, "body": "no time", "user": {"username": "b"}},'
            b'{"id": 3, "created_at": "2024-05-02T20:01:00Z", "body": "   ",'
            b' "user": {"username": "c"}}]}')
    server.add("/api/2/streams/symbol/AAPL.json", Route(body=body, content_type=JSON))
    crawler = Crawler(make_settings(tmp_path, [stocktwits_spec(server)]))
    result = crawler.run_source("stocktwits-aapl", deliver=False)
    assert result.new == 1 and result.dead_lettered == 2 and result.failed == 2
    assert any("missing time field 'created_at'" in e for e in result.errors)
    assert any("no title and no text" in e for e in result.errors)
