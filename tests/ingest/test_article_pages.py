"""`html` kind in single-article mode: canonical address, automatic extraction (trafilatura),
per-site boilerplate patterns, and no two articles sharing an id."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from finsentry.ingest.crawler import Crawler

from .conftest import FixtureServer, make_settings

CANONICAL_1 = "https://finance.portal.example.cn/stock/2019-09-26/doc-iicezzrq8657.shtml"


def test_article_mode_extracts_canonical_text_and_time(tmp_path: Path,
                                                       server: FixtureServer) -> None:
    for n in (1, 2, 3):
        server.add_file(f"/a/{n}.shtml", f"portal_article_{n}.html", "text/html")
    spec = {"kind": "html", "name": "portal-articles", "mode": "article",
            "url": server.url("/a/1.shtml"),
            "urls": [server.url("/a/2.shtml"), server.url("/a/3.shtml")],
            "timezone": "Asia/Shanghai",
            "boilerplate": [r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} 来源：.*$", r"^免责声明：.*$",
                            r"^责任编辑：.*$", r"^Disclaimer: .*$"]}
    crawler = Crawler(make_settings(tmp_path, [spec], aliases={}))
    result = crawler.run_source("portal-articles", deliver=False)
    assert result.errors == [] and result.new == 3
    catl_cn, cmb, catl_en = result.documents
    # the page's canonical address, never the first <a> of the page ('/')
    assert catl_cn.url == CANONICAL_1
    assert catl_cn.title == "宁德时代一季度净利润同比增长7% 储能业务提速"
    assert catl_cn.text == (
        "宁德时代晚间发布一季度报告，公司实现营业收入797.71亿元，同比下降10.41%；归属于上市公司"
        "股东的净利润105.1亿元，同比增长7%。\n"
        "公司表示，储能电池出货量保持较快增长，海外客户订单持续放量，一季度经营活动产生的现金"
        "流量净额同比大幅增加。\n"
        "多家券商研报认为，在原材料价格回落的背景下，公司盈利能力有望继续修复，储能业务将成为"
        "新的增长点。")
    # '2019-09-26 12:11 来源：证券时报网' is Shanghai time inside mixed text
    assert catl_cn.published_at == datetime(2019, 9, 26, 4, 11, tzinfo=UTC)
    assert catl_cn.language == "zh"
    assert [(t.symbol, t.relevance) for t in catl_cn.tickers] == [("300750.SZ", 1.0)]
    # a template-wide canonical pointing at the front page is not this article's address
    assert cmb.url == server.url("/a/2.shtml")
    assert cmb.title == "招商银行发布2023年度报告 拟每股派息1.972元"
    assert cmb.published_at == datetime(2024, 3, 25, 11, 2, tzinfo=UTC)
    assert [(t.symbol, t.relevance) for t in cmb.tickers] == [("600036.SH", 1.0)]
    # a different article claiming the first one's address keeps its own
    assert catl_en.url == server.url("/a/3.shtml")
    assert catl_en.metadata["canonical_rejected"] == CANONICAL_1
    assert catl_en.title == "CATL opens battery plant in Hungary"
    assert catl_en.text == (
        "Contemporary Amperex Technology opened its first battery plant in Hungary on Monday, "
        "a 7.3 billion euro project that will supply European carmakers.\n"
        "The plant in Debrecen is expected to reach full capacity by 2027, the company said, "
        "adding that it would hire about 9,000 local staff over the coming years.")
    assert catl_en.published_at == datetime(2024, 5, 6, 1, 30, tzinfo=UTC)
    assert catl_en.language == "en"
    assert len({d.id for d in result.documents}) == 3


def test_list_mode_still_needs_an_item_selector() -> None:
    import pytest
    from pydantic import ValidationError

    from finsentry.config import Settings

    with pytest.raises(ValidationError, match="list mode needs item_selector"):
        Settings.model_validate({"ingest": {"sources": [
            {"kind": "html", "name": "x", "url": "https://x.example/"}]}})


def test_list_mode_without_article_selectors_extracts_main_text(
        tmp_path: Path, server: FixtureServer) -> None:
    from .conftest import Route

    listing = ("<html><body><div class='nav'><a href='/'>首页</a></div><ul class='news'>"
               "<li><a href='/a/1.shtml'>宁德时代一季度净利润同比增长7%</a></li></ul>"
               "</body></html>")
    server.add("/list", Route(body=listing.encode(), content_type="text/html; charset=utf-8"))
    server.add_file("/a/1.shtml", "portal_article_1.html", "text/html")
    spec = {"kind": "html", "name": "portal-list", "url": server.url("/list"),
            "item_selector": "ul.news li", "timezone": "Asia/Shanghai",
            "boilerplate": [r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} 来源：.*$", r"^免责声明：.*$"]}
    crawler = Crawler(make_settings(tmp_path, [spec], aliases={}))
    result = crawler.run_source("portal-list", deliver=False)
    assert result.errors == [] and result.new == 1
    doc = result.documents[0]
    assert doc.url == server.url("/a/1.shtml")  # the list's link is the id (restart-safe)
    assert doc.metadata["canonical_url"] == CANONICAL_1
    assert doc.title == "宁德时代一季度净利润同比增长7%"  # the list's title
    assert doc.text.startswith("宁德时代晚间发布一季度报告") and "免责声明" not in doc.text
    assert doc.published_at == datetime(2019, 9, 26, 4, 11, tzinfo=UTC)


def test_list_items_never_share_an_id(tmp_path: Path, server: FixtureServer) -> None:
    from .conftest import Route

    listing = ("<html><body><ul>"
               "<li><a href='#'>Acme Robotics wins Navy contract</a></li>"
               "<li><a href='javascript:void(0)'>Acme Robotics opens Ohio plant</a></li>"
               "<li><a href='/markets/'>Acme Robotics cuts prices</a></li>"
               "<li><a href='/markets/'>Acme Robotics names new CFO</a></li>"
               "</ul></body></html>")
    server.add("/flash", Route(body=listing.encode(), content_type="text/html; charset=utf-8"))
    spec = {"kind": "html", "name": "flash", "url": server.url("/flash"),
            "item_selector": "li", "follow_links": False, "language": "en"}
    crawler = Crawler(make_settings(tmp_path, [spec]))
    result = crawler.run_source("flash", deliver=False)
    assert result.errors == [] and result.new == 4
    urls = {d.title: d.url for d in result.documents}
    assert urls == {"Acme Robotics wins Navy contract": None,  # '#': the list page itself
                    "Acme Robotics opens Ohio plant": None,
                    "Acme Robotics cuts prices": server.url("/markets/"),
                    "Acme Robotics names new CFO": None}  # same link, another story
    assert len({d.id for d in result.documents}) == 4
