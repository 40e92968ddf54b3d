"""Exact repeats, near-duplicates across sources, novelty decay, ticker relevance, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from finsentry.config import IngestSettings
from finsentry.ingest.crawler import Crawler
from finsentry.ingest.dedup import NoveltyIndex
from finsentry.ingest.normalise import TickerLinker
from finsentry.ingest.state import StateStore
from finsentry.records import Document

from .conftest import ALIASES, FixtureServer, make_settings
from .test_jsonapi import reddit_spec


def three_sources(server: FixtureServer) -> list[dict[str, Any]]:
    server.add_file("/wire.rss", "story_wire.rss", "application/rss+xml")
    server.add_file("/r/investing/new.json", "story_forum.json", "application/json")
    server.add_file("/markets", "story_site_list.html", "text/html; charset=utf-8")
    server.add_file("/markets/2024/05/06/acme-robotics-recall", "story_site_article.html",
                    "text/html; charset=utf-8")
    return [
        {"kind": "rss", "name": "wire", "url": server.url("/wire.rss")},
        reddit_spec(server, "forum", "/r/investing/new.json"),
        {"kind": "html", "name": "ledger", "url": server.url("/markets"),
         "item_selector": "article.card", "link_selector": "h3 a",
         "time_selector": "time", "time_attr": "datetime",
         "article_title_selector": "h1.headline", "article_body_selector": ".article-body"},
    ]


def test_same_story_from_three_sources(tmp_path: Path, server: FixtureServer) -> None:
    crawler = Crawler(make_settings(tmp_path, three_sources(server)))
    wire, forum, ledger = crawler.run_all(deliver=False)
    assert (wire.new, forum.new, ledger.new) == (1, 1, 1)
    first, second, third = wire.documents[0], forum.documents[0], ledger.documents[0]
    assert first.novelty == 1.0 and first.duplicate_of is None
    assert second.duplicate_of == first.id and third.duplicate_of == first.id
    assert second.novelty == 0.75 and third.novelty == 0.75 ** 2  # repeats decay
    assert (forum.near_duplicate, ledger.near_duplicate) == (1, 1)
    for doc in (first, second, third):
        assert doc.tickers[0].symbol == "ACMR" and doc.tickers[0].relevance == 1.0
        assert doc.language == "en"
    assert "Advertisement" in third.text  # the page's ad slot is inside the body selector
    # all three documents are in the disk buffer for Kafka, keyed by the ticker
    keys = [r[2] for r in crawler.state.pending(10)]
    assert keys == [b"ACMR", b"ACMR", b"ACMR"]


def test_restart_does_not_reemit(tmp_path: Path, server: FixtureServer) -> None:
    sources = three_sources(server)  # no ETags: every poll gets the full pages again
    crawler = Crawler(make_settings(tmp_path, sources))
    assert sum(r.new for r in crawler.run_all(deliver=False)) == 3
    crawler.close()
    restarted = Crawler(make_settings(tmp_path, sources))
    again = restarted.run_all(deliver=False)
    assert sum(r.new for r in again) == 0
    assert sum(r.duplicate for r in again) == 3
    assert restarted.state.pending_count() == 3  # nothing new was buffered
    # the article page of the already-ingested story was not fetched again
    article = "/markets/2024/05/06/acme-robotics-recall"
    assert len(server.hits_for(article)) == 1
    restarted.close()


def _doc(text: str, when: datetime, url: str) -> Document:
    return Document.create(source="t", title="", text=text, url=url, published_at=when)


def test_novelty_window_and_exact_hash(tmp_path: Path) -> None:
    settings = IngestSettings.model_validate({"state_dir": tmp_path})
    state = StateStore(tmp_path / "s.sqlite3")
    index = NoveltyIndex(settings, state)
    story = ("Regulators fined Globex Bank 200 million dollars on Tuesday for failing to "
             "monitor suspicious transfers between 2019 and 2022, the agency said.")
    t0 = datetime(2024, 5, 6, 9, tzinfo=UTC)

    def admit(doc: Document) -> Any:
        sig = index.signature(doc)
        verdict = index.assess(doc, sig)
        if verdict.kind != "duplicate":
            with state.transaction() as conn:
                index.remember(conn, doc, verdict, sig)
            index.committed(doc, sig)
        return verdict

    assert admit(_doc(story, t0, "https://a.example/1")).novelty == 1.0
    near = admit(_doc(story.replace("Tuesday", "Tuesday morning"), t0 + timedelta(hours=1),
                      "https://b.example/2"))
    assert near.kind == "near_duplicate" and near.novelty == 0.75
    # identical text at another URL: an exact repeat, dropped
    assert admit(_doc(story, t0 + timedelta(hours=2), "https://c.example/3")).kind == \
        "duplicate"
    # three days later the same story opens a new cluster: novel again
    later = admit(_doc(story + " Globex said it would appeal.", t0 + timedelta(days=3),
                       "https://d.example/4"))
    assert later.kind == "new" and later.novelty == 1.0
    # a restarted index (rebuilt from SQLite) still recognises the cluster
    index2 = NoveltyIndex(settings, state)
    doc = _doc(story.replace("said.", "said in a statement."), t0 + timedelta(hours=3),
               "https://e.example/5")
    assert index2.assess(doc, index2.signature(doc)).kind == "near_duplicate"
    # signatures older than two windows are forgotten from memory
    index2._added = {k: 0.0 for k in index2._added}
    assert index2.prune() == 3 and index2.lsh.is_empty()


def test_unrelated_stories_stay_novel(tmp_path: Path) -> None:
    settings = IngestSettings.model_validate({"state_dir": tmp_path})
    index = NoveltyIndex(settings, StateStore(tmp_path / "s.db"))
    a = _doc("Apple reported record services revenue and a larger buyback for the quarter.",
             datetime(2024, 5, 2, tzinfo=UTC), "https://x/1")
    b = _doc("Oil prices fell for a third day as US crude inventories rose more than expected.",
             datetime(2024, 5, 2, tzinfo=UTC), "https://x/2")
    for doc in (a, b):
        sig = index.signature(doc)
        verdict = index.assess(doc, sig)
        assert verdict.kind == "new"
        with index.state.transaction() as conn:
            index.remember(conn, doc, verdict, sig)
        index.committed(doc, sig)


def test_ticker_relevance_ranking() -> None:
    linker = TickerLinker(ALIASES)
    body = ("Markets were mixed on Thursday as investors digested a busy week of earnings "
            "reports, central bank commentary and fresh data on the labour market. " * 3
            + "Elsewhere, Microsoft slipped 1%.")
    mentions = linker.link("Apple shares jump after results", body, tagged=["NVDA"])
    assert [(m.symbol, m.relevance) for m in mentions] == [
        ("AAPL", 1.0), ("NVDA", 0.9), ("MSFT", 0.4)]
    assert linker.link("", "$tsla and $100 and $BRK.B", [])[0].symbol in {"TSLA", "BRK.B"}
    assert {m.symbol for m in linker.link("", "$tsla and $100 and $BRK.B", [])} == {
        "TSLA", "BRK.B"}
    assert linker.link("", "茅台今天涨停", [])[0].symbol == "600519.SS"


def test_shared_boilerplate_does_not_make_stories_near_duplicates(
        tmp_path: Path, server: FixtureServer) -> None:
    # three different notes that share a long disclaimer (most of each item's text)
    server.add_file("/minute.rss", "wire_disclaimer.rss", "application/rss+xml")
    crawler = Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "minute", "url": server.url("/minute.rss")}]))
    result = crawler.run_source("minute", deliver=False)
    assert (result.new, result.near_duplicate) == (3, 0)
    assert all(d.novelty == 1.0 and d.duplicate_of is None for d in result.documents)
    # the disclaimer stays in the text; it is only kept out of the MinHash
    assert all("not investment advice" in d.text for d in result.documents)
