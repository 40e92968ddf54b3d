"""Tickers from the source's own tags (symbol categories, StockTwits symbols) and from the
shipped CSI 300 alias file plus user aliases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from finsentry.ingest.crawler import Crawler
from finsentry.ingest.normalise import TickerLinker, load_aliases

from .conftest import FixtureServer, make_settings
from .test_jsonapi import stocktwits_spec


def test_symbol_categories_are_tagged_tickers(tmp_path: Path, server: FixtureServer) -> None:
    server.add_file("/symbol/amd.rss", "broker_symbols.rss", "application/rss+xml")
    crawler = Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "broker", "url": server.url("/symbol/amd.rss")}]))
    result = crawler.run_source("broker", deliver=False)
    assert result.errors == [] and result.new == 2
    docs = {d.url: d for d in result.documents}
    gpu = docs["https://research.broker.example/news/4001-gpu-demand-outlook"]
    assert gpu.title == "Data-center GPU demand lifts chipmaker outlook"
    assert gpu.text == ("The chipmaker raised its full-year data-center revenue forecast after "
                        "hyperscalers expanded orders for accelerators.")
    assert gpu.published_at == datetime(2024, 5, 3, 17, 5, tzinfo=UTC)
    assert gpu.language == "en"
    # `type="symbol"`: a ticker, while the plain category stays metadata
    assert [(t.symbol, t.relevance) for t in gpu.tickers] == [("AMD", 0.9)]
    assert gpu.metadata["categories"] == ["AMD", "Semiconductors"]
    deal = docs["https://research.broker.example/news/4002-supply-deal"]
    # a `domain` ending in /symbol marks symbols; the /topic category is not one
    assert [(t.symbol, t.relevance) for t in deal.tickers] == [("AMZN", 0.9), ("GOOGL", 0.9)]


def test_stocktwits_symbols_are_tagged_tickers(tmp_path: Path, server: FixtureServer) -> None:
    # the message never names the symbol it is filed under: only `symbols` says TSLA
    server.add_file("/api/2/streams/symbol/AAPL.json", "stocktwits_symbols_only.json",
                    "application/json")
    crawler = Crawler(make_settings(tmp_path, [stocktwits_spec(server)]))
    result = crawler.run_source("stocktwits-aapl", deliver=False)
    assert result.errors == [] and result.new == 1
    doc = result.documents[0]
    assert doc.url == "https://stocktwits.com/swing_sam/message/574000001"
    assert [(t.symbol, t.relevance) for t in doc.tickers] == [("TSLA", 0.9)]


def test_chinese_company_names_from_shipped_aliases(tmp_path: Path,
                                                    server: FixtureServer) -> None:
    server.add_file("/company.xml", "cn_company_news.rss", "application/rss+xml")
    crawler = Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "cn-company", "url": server.url("/company.xml"),
         "timezone": "Asia/Shanghai"}], aliases={}))
    result = crawler.run_source("cn-company", deliver=False)
    docs = {d.title: d for d in result.documents}
    cmb = docs["招商银行一季度净利润同比下降2.08%"]
    assert [(t.symbol, t.relevance) for t in cmb.tickers] == [
        ("600036.SH", 1.0), ("601318.SH", 0.7)]
    assert cmb.published_at == datetime(2024, 4, 30, 10, 20, tzinfo=UTC)
    assert cmb.language == "zh"
    # '茅台' alone is not in the shipped list (only '贵州茅台' is): no guess
    assert docs["茅台批价回落 渠道库存可控"].tickers == []


def test_user_aliases_extend_and_win_over_shipped() -> None:
    linker = TickerLinker(load_aliases({"600519.SS": ["茅台"]}, ["csi300"]))
    # the user's spelling of the ticker replaces the shipped '600519.SH', with its names
    assert [(t.symbol, t.relevance) for t in linker.link("贵州茅台发布年报", "", [])] == [
        ("600519.SS", 1.0)]
    assert [t.symbol for t in linker.link("茅台批价回落", "", [])] == ["600519.SS"]
    # a bare six-digit code in text, as portals write it
    assert [t.symbol for t in linker.link("", "宁德时代(300750)发布公告", [])] == ["300750.SZ"]
    shipped = load_aliases({}, ["csi300"])
    assert len(shipped) == 300 and shipped["600519.SH"] == ["贵州茅台"]
    assert shipped["000002.SZ"] == ["万科A", "万科Ａ", "万科"]
