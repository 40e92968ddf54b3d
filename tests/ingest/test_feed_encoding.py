"""Feed encodings from the bytes: undeclared or wrongly declared GBK, double-encoded mojibake."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from finsentry.ingest.crawler import Crawler, RunResult

from .conftest import FixtureServer, make_settings

MOUTAI = "贵州茅台：一季度营业收入同比增长18.0%"
CATL = "宁德时代发布新一代储能系统"


def _run(tmp_path: Path, server: FixtureServer, fixture: str,
         content_type: str) -> tuple[Crawler, RunResult]:
    server.add_file("/roll.xml", fixture, content_type)
    crawler = Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "cn-roll", "url": server.url("/roll.xml"),
         "timezone": "Asia/Shanghai"}]))
    return crawler, crawler.run_source("cn-roll", deliver=False)


def _check_chinese(result: RunResult) -> None:
    docs = {d.title: d for d in result.documents}
    assert sorted(docs) == sorted([MOUTAI, CATL])
    moutai = docs[MOUTAI]
    assert moutai.text == ("贵州茅台公告，公司一季度实现营业总收入464.85亿元，同比增长18.04%；"
                           "归母净利润240.65亿元。")
    assert moutai.url == "http://finance.example.cn/stock/2024-05-02/doc-101.shtml"
    assert moutai.published_at == datetime(2024, 5, 2, 7, 30, tzinfo=UTC)
    assert moutai.language == "zh"
    assert [(t.symbol, t.relevance) for t in moutai.tickers] == [("600519.SS", 1.0)]
    assert [(t.symbol, t.relevance) for t in docs[CATL].tickers] == [("300750.SZ", 1.0)]


def test_undeclared_gbk_feed_decodes_to_chinese(tmp_path: Path, server: FixtureServer) -> None:
    # no charset in the header, no encoding in the XML declaration: XML says UTF-8, bytes are GBK
    _, result = _run(tmp_path, server, "cn_feed_gbk_undeclared.rss", "application/rss+xml")
    assert result.errors == [] and result.new == 2
    _check_chinese(result)


def test_wrongly_declared_gbk_feed_decodes_to_chinese(tmp_path: Path,
                                                      server: FixtureServer) -> None:
    # the server claims ISO-8859-1: decoding as declared gives Latin-1 soup, so it is not used
    _, result = _run(tmp_path, server, "cn_feed_gbk_undeclared.rss",
                     "text/xml; charset=ISO-8859-1")
    assert result.errors == [] and result.new == 2
    _check_chinese(result)


def test_double_encoded_feed_is_refused_and_counted(tmp_path: Path,
                                                    server: FixtureServer) -> None:
    crawler, result = _run(tmp_path, server, "cn_feed_double_encoded.rss",
                           "application/rss+xml; charset=utf-8")
    url = server.url("/roll.xml")
    assert result.new == 0 and result.failed == 1
    assert result.errors == [
        f"source cn-roll: {url}: refused mis-decoded feed: feed text does not decode cleanly "
        "(utf-8: Latin-1 soup that is utf-8 Chinese read as latin-1; detected utf_8: Latin-1 "
        "soup that is utf-8 Chinese read as latin-1)"]
    metrics = {m["source"]: m for m in crawler.write_metrics()["sources"]}
    assert metrics["cn-roll"]["failed"] == 1 and metrics["cn-roll"]["dead_lettered"] == 1
    dlq = [json.loads(r[3]) for r in crawler.state.pending(10)]
    assert [e["reason"] for e in dlq] == result.errors


def test_empty_feed_with_encoding_override_is_no_failure(tmp_path: Path,
                                                         server: FixtureServer) -> None:
    # header says UTF-8, the document says gb2312, and there are no items: a quiet feed
    _, result = _run(tmp_path, server, "cn_feed_empty_gb2312.rss",
                     "application/rss+xml; charset=utf-8")
    assert result.errors == [] and result.fetched == 0 and result.ok
