"""HTML list-and-article pages by CSS selectors: a GBK finance news list and a UTF-8 forum."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finsentry.ingest.crawler import Crawler
from finsentry.ingest.parsing import decode_page

from .conftest import FixtureServer, Route, make_settings


def sina_spec(server: FixtureServer, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "html", "name": "sina-roll", "url": server.url("/roll/index.html"),
        "timezone": "Asia/Shanghai", "item_selector": "ul.list_009 > li",
        "link_selector": "a", "time_selector": "span", "time_format": "(%m月%d日 %H:%M)",
        "next_selector": ".pagebox_next a", "max_pages": 3,
        "article_title_selector": "h1.main-title", "article_body_selector": "#artibody",
        "article_time_selector": ".date-source .date",
        "article_time_format": "%Y年%m月%d日 %H:%M", **extra,
    }


def _serve_sina(server: FixtureServer) -> None:
    # Sina declares gb2312 only in <meta>; the HTTP header carries no charset
    server.add_file("/roll/index.html", "sina_roll.html", "text/html", etag='"r1"')
    server.add_file("/roll/roll_2.shtml", "sina_roll_2.html", "text/html")
    server.add_file("/stock/s/2024-05-02/doc-inaurqxa1234567.shtml", "sina_doc_1.shtml",
                    "text/html")
    server.add_file("/roll/2024-05-02/doc-inaurqxb7654321.shtml", "sina_doc_2.shtml",
                    "text/html")
    server.add_file("/stock/s/2024-05-01/doc-inaurqxc1112223.shtml", "sina_doc_3.shtml",
                    "text/html")


def test_gbk_list_and_articles(tmp_path: Path, server: FixtureServer) -> None:
    _serve_sina(server)
    crawler = Crawler(make_settings(tmp_path, [sina_spec(server)]))
    result = crawler.run_source("sina-roll", deliver=False)
    assert result.errors == [] and result.new == 3  # two on page 1, one on the next page
    moutai = next(d for d in result.documents if "贵州茅台一季度" in d.title)
    assert moutai.title == "贵州茅台一季度净利润同比增长15.7% 直销渠道收入大增"
    assert "归母净利润240.65亿元" in moutai.text
    assert "sinaads" not in moutai.text and "text-indent" not in moutai.text
    assert moutai.language == "zh"
    assert moutai.published_at == datetime(2024, 5, 2, 7, 30, tzinfo=UTC)  # 15:30 Shanghai
    assert moutai.tickers[0].symbol == "600519.SS" and moutai.tickers[0].relevance == 1.0
    pboc = next(d for d in result.documents if d.title.startswith("央行"))
    assert pboc.tickers == [] and pboc.language == "zh"
    holiday = next(d for d in result.documents if "五一" in d.title)
    assert {t.symbol: t.relevance for t in holiday.tickers} == {"600519.SS": 0.7}


def test_gbk_second_poll_not_modified(tmp_path: Path, server: FixtureServer) -> None:
    _serve_sina(server)
    crawler = Crawler(make_settings(tmp_path, [sina_spec(server)]))
    assert crawler.run_source("sina-roll", deliver=False).new == 3
    before = len(server.hits)
    again = crawler.run_source("sina-roll", deliver=False)
    assert again.not_modified and again.new == 0
    assert [h.status for h in server.hits[before:]] == [304]  # no article page re-fetched


def test_utf8_forum_list_without_year(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/list,600519.html", "guba_600519.html", "text/html; charset=utf-8")
    server.add_file("/news,600519,1412345678.html", "guba_post_1.html", "text/html")
    server.add_file("/news,600519,1412340001.html", "guba_post_2.html", "text/html")
    spec = {
        "kind": "html", "name": "guba-600519", "url": server.url("/list,600519.html"),
        "timezone": "Asia/Shanghai", "tickers": ["600519.SS"],
        "item_selector": "#articlelistnew div.articleh", "link_selector": ".l3 a",
        "time_selector": ".l5", "time_format": "%m-%d %H:%M",
        "article_body_selector": "#zwconbody",
    }
    crawler = Crawler(make_settings(tmp_path, [spec]))
    result = crawler.run_source("guba-600519", deliver=False)
    assert result.new == 2 and not result.errors
    post = next(d for d in result.documents if "上车" in d.title)
    assert post.title == "茅台这个价格还能上车吗？一季报超预期"  # from the link's title attr
    assert post.text.startswith("一季报营收和利润都超预期")
    assert post.tickers[0].symbol == "600519.SS" and post.tickers[0].relevance == 1.0
    # the list shows '05-02 15:42' with no year: month/day/time kept, year inferred
    local = post.published_at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert (local.month, local.day, local.hour, local.minute) == (5, 2, 15, 42)
    assert post.published_at <= datetime.now(UTC)


def test_wrong_declared_encoding_is_detected(tmp_path: Path, server: FixtureServer) -> None:
    body = (Path(__file__).parent / "fixtures" / "sina_roll.html").read_bytes()
    server.add("/roll/index.html", Route(body=body.replace(b"gb2312", b"utf-8"),
                                         content_type="text/html; charset=utf-8"))
    crawler = Crawler(make_settings(tmp_path, [sina_spec(server, follow_links=False)]))
    result = crawler.run_source("sina-roll", deliver=False)
    # the page lies (says UTF-8, is GBK): detection decodes it; the missing page 2 is an
    # error that names source and URL but does not lose page 1
    assert result.new == 2
    assert any(d.title.startswith("央行") for d in result.documents)
    assert result.errors == [f"source sina-roll: {server.url('/roll/roll_2.shtml')}: HTTP 404"]


def test_undecodable_page_is_counted_and_dead_lettered(tmp_path: Path,
                                                       server: FixtureServer) -> None:
    import random

    rng = random.Random(1)
    garbage = bytes(rng.randrange(256) for _ in range(5000))
    server.add("/roll/index.html", Route(body=garbage, content_type="text/html; charset=utf-8"))
    crawler = Crawler(make_settings(tmp_path, [sina_spec(server)]))
    result = crawler.run_source("sina-roll", deliver=False)
    assert result.new == 0 and result.failed == 1 and result.dead_lettered == 1
    assert "source sina-roll" in result.errors[0] and "cannot decode" in result.errors[0]


def test_decode_page_prefers_override_then_header_then_meta() -> None:
    raw = "<meta charset=gbk><p>茅台</p>".encode("gbk")
    assert decode_page(raw)[0].endswith("<p>茅台</p>")
    assert decode_page(raw, header_charset="gb2312")[1] == "gb18030"
    page = (Path(__file__).parent / "fixtures" / "sina_doc_1.shtml").read_bytes()
    undeclared = page.replace(b"charset=gb2312", b"")
    text, enc = decode_page(undeclared)  # no declaration anywhere: detected
    assert "归母净利润240.65亿元" in text and enc == "gb18030"
