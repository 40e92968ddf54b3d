"""Language of short, formulaic text: lingua restricted to the pipeline's languages, else the
source's declared language, else none."""

from __future__ import annotations

from pathlib import Path

from finsentry.ingest.crawler import Crawler
from finsentry.ingest.normalise import detect_language

from .conftest import FixtureServer, make_settings


def _spec(server: FixtureServer, name: str, language: str | None) -> dict[str, object]:
    return {"kind": "json", "name": name, "url": server.url("/posts.json"),
            "items_path": "posts", "text_field": "text", "time_field": "ts",
            "time_format": "epoch", "url_template": f"https://{name}.example/p/{{id}}",
            "language": language}


def test_short_posts_get_a_language_or_the_declared_one(tmp_path: Path,
                                                        server: FixtureServer) -> None:
    server.add_file("/posts.json", "short_posts.json", "application/json")
    declared, undeclared = (
        Crawler(make_settings(tmp_path / name, [_spec(server, name, language)]))
        .run_source(name, deliver=False)
        for name, language in (("declared", "en"), ("undeclared", None)))
    assert declared.errors == [] and declared.new == 6
    langs = {d.url.rsplit("/", 1)[1]: d.language for d in declared.documents if d.url}
    assert langs == {
        "p1": "en",  # symbols and emoji only: nothing to detect, the source says English
        "p2": "zh",  # detected: Chinese even though the source is declared English
        "p3": "en",  # too short to tell: declared
        "p4": "en",  # a filing's formulaic line: detected
        "p5": "zh",  # a cashtag does not make Chinese text English
        "p6": "en",  # detected
    }
    # a source that declares nothing: no language where nothing can be told
    langs = {d.url.rsplit("/", 1)[1]: d.language for d in undeclared.documents if d.url}
    assert langs == {"p1": None, "p2": "zh", "p3": None, "p4": "en", "p5": "zh", "p6": "en"}


def test_detector_is_restricted_and_abstains() -> None:
    assert detect_language("$AAPL $MSFT $NVDA 🚀🚀🚀") is None
    assert detect_language("$TSLA 10-Q!") is None
    assert detect_language("8-K - Apple Inc. (0000320193) (Filer)") == "en"
    assert detect_language("宁德时代(300750)") == "zh"
    assert detect_language("Shares of Globex rose after the bank beat estimates") == "en"
