"""SEC EDGAR: company feeds, insider filings under their issuer, CIK -> ticker, and distinct
filings never mistaken for near-duplicates of each other."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from finsentry.ingest.crawler import Crawler

from .conftest import FixtureServer, Route, make_settings

NVDA_BY_CIK = {"NVDA": ["0001045810"]}  # the CIK alone: no company name to match in text
FORM4_DESC = "Statement of changes in beneficial ownership of securities"
INDEX = "https://www.sec.gov/Archives/edgar/data/{}/{}/{}-index.htm"


def _edgar(tmp_path: Path, server: FixtureServer, path: str, fixture: str) -> Crawler:
    server.add_file(path, fixture, "application/atom+xml")
    return Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "edgar", "url": server.url(path), "edgar": True}],
        aliases=NVDA_BY_CIK))


def test_company_feed_gives_company_cik_and_ticker(tmp_path: Path,
                                                   server: FixtureServer) -> None:
    crawler = _edgar(tmp_path, server, "/cgi-bin/browse-edgar", "edgar_company_nvda.atom")
    result = crawler.run_source("edgar", deliver=False)
    assert result.errors == [] and result.new == 3 and result.near_duplicate == 0
    docs = {d.metadata["accession_number"]: d for d in result.documents}
    # two Form 4s of one company on one day read the same, yet are two filings
    for acc, when in (("0001045810-24-000121", datetime(2024, 5, 3, 22, 35, 2, tzinfo=UTC)),
                      ("0001045810-24-000120", datetime(2024, 5, 3, 22, 31, 47, tzinfo=UTC))):
        doc = docs[acc]
        assert doc.title == f"4 - NVIDIA CORP (0001045810): {FORM4_DESC}"
        assert doc.text == doc.title  # the Filed/AccNo/Size line is metadata, not text
        assert doc.url == INDEX.format(1045810, acc.replace("-", ""), acc)
        assert doc.published_at == when and doc.language == "en"
        assert [(t.symbol, t.relevance) for t in doc.tickers] == [("NVDA", 0.9)]
        assert {k: doc.metadata[k] for k in ("form_type", "company", "cik", "filed", "size")} \
            == {"form_type": "4", "company": "NVIDIA CORP", "cik": "0001045810",
                "filed": "2024-05-03", "size": "6 KB"}
        assert doc.novelty == 1.0 and doc.duplicate_of is None
    eight_k = docs["0001045810-24-000113"]
    assert eight_k.title == "8-K - NVIDIA CORP (0001045810): Current report"
    assert eight_k.text == (
        "Item 5.02: Departure of Directors or Certain Officers; Election of Directors; "
        "Appointment of Certain Officers: Compensatory Arrangements of Certain Officers\n"
        "Item 9.01: Financial Statements and Exhibits")
    assert [(t.symbol, t.relevance) for t in eight_k.tickers] == [("NVDA", 0.9)]


def test_insider_filing_is_filed_under_the_issuer(tmp_path: Path,
                                                  server: FixtureServer) -> None:
    crawler = _edgar(tmp_path, server, "/cgi-bin/browse-edgar", "edgar_current_form4.atom")
    result = crawler.run_source("edgar", deliver=False)
    assert result.errors == [] and result.new == 3
    pair = next(d for d in result.documents
                if d.metadata["accession_number"] == "0001045810-24-000121")
    # the issuer and the insider entries are one filing, about the issuer
    assert pair.title == "4 - NVIDIA CORP (0001045810) (Issuer)"
    assert pair.metadata["company"] == "NVIDIA CORP" and pair.metadata["cik"] == "0001045810"
    assert pair.metadata["reporting_owners"] == ["Kress Colette"]
    assert pair.metadata["reporting_ciks"] == ["0001554930"]
    assert [(t.symbol, t.relevance) for t in pair.tickers] == [("NVDA", 0.9)]
    alone = next(d for d in result.documents
                 if d.metadata["accession_number"] == "0001999777-24-000003")
    # an insider entry whose issuer is not on the page is never filed under the insider
    assert "company" not in alone.metadata and "cik" not in alone.metadata
    assert alone.metadata["reporting_owner"] == "Doe Jane Q" and alone.tickers == []
    # SC 13D: filed by a holder, about the subject company
    stake = next(d for d in result.documents if d.metadata["form_type"] == "SC 13D")
    assert stake.metadata["company"] == "Example Brands Inc"
    assert stake.metadata["reporting_owners"] == ["Activist Partners LP"]
    assert stake.published_at == datetime(2024, 5, 3, 21, 2, 45, tzinfo=UTC)


def _filing(n: int) -> str:
    cik = f"{1800000 + n:010d}"
    acc = f"{cik}-24-{n:06d}"
    href = INDEX.format(int(cik), acc.replace("-", ""), acc)
    return (f"<entry><title>8-K - Example Holdings {n} Inc ({cik}) (Filer)</title>"
            f'<link rel="alternate" type="text/html" href="{href}"/>'
            f"<summary type=\"html\"> &lt;b&gt;Filed:&lt;/b&gt; 2024-05-02 &lt;b&gt;AccNo:"
            f"&lt;/b&gt; {acc} &lt;b&gt;Size:&lt;/b&gt; 245 KB&lt;br&gt;Item 2.02: Results of "
            "Operations and Financial Condition&lt;br&gt;Item 9.01: Financial Statements and "
            "Exhibits</summary>"
            f"<updated>2024-05-02T16:{n % 60:02d}:00-04:00</updated>"
            '<category scheme="https://www.sec.gov/" label="form type" term="8-K"/>'
            f"<id>urn:tag:sec.gov,2008:accession-number={acc}</id></entry>")


def test_fifty_distinct_filings_are_fifty_novel_documents(tmp_path: Path,
                                                          server: FixtureServer) -> None:
    feed = ('<?xml version="1.0" encoding="ISO-8859-1" ?>'
            '<feed xmlns="http://www.w3.org/2005/Atom"><title>Latest Filings</title>'
            + "".join(_filing(n) for n in range(50)) + "</feed>")
    server.add("/current", Route(body=feed.encode("latin-1"),
                                 content_type="application/atom+xml"))
    crawler = Crawler(make_settings(tmp_path, [
        {"kind": "rss", "name": "edgar", "url": server.url("/current"), "edgar": True}]))
    result = crawler.run_source("edgar", deliver=False)
    assert result.errors == [] and result.fetched == 50
    assert (result.new, result.near_duplicate, result.duplicate) == (50, 0, 0)
    assert all(d.novelty == 1.0 and d.duplicate_of is None for d in result.documents)
    assert len({d.id for d in result.documents}) == 50
