"""Sources are config entries: a discriminated union on `kind`, unknown keys refused."""

from __future__ import annotations

import json

import pytest

from finsentry.config import load_settings
from finsentry.errors import ConfigError
from finsentry.ingest.html import HtmlSpec
from finsentry.ingest.jsonapi import JsonApiSpec
from finsentry.ingest.registry import SOURCE_KINDS, build_source


def test_sources_from_environment_json(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = [
        {"kind": "json", "name": "reddit", "url": "https://www.reddit.com/r/stocks/new.json",
         "items_path": "data.children", "text_field": "selftext", "time_field": "created_utc"},
        {"kind": "html", "name": "sina", "url": "https://finance.sina.com.cn/roll/",
         "item_selector": "ul.list_009 > li"},
    ]
    monkeypatch.setenv("FINSENTRY_INGEST__SOURCES", json.dumps(sources))
    monkeypatch.setenv("FINSENTRY_INGEST__ALLOW_NETWORKS", '["10.1.0.0/16"]')
    settings = load_settings()
    reddit, sina = settings.ingest.sources
    assert isinstance(reddit, JsonApiSpec) and isinstance(sina, HtmlSpec)
    assert type(build_source(sina)) is SOURCE_KINDS["html"]
    assert settings.ingest.allow_networks == ["10.1.0.0/16"]


@pytest.mark.parametrize(("source", "message"), [
    ({"kind": "ftp", "name": "x"}, "'rss', 'json', 'html', 'file'"),
    ({"kind": "rss", "name": "x", "url": "https://a/feed", "intervall_s": 5},
     "ingest.sources.0.rss.intervall_s: Extra inputs are not permitted"),
    ({"kind": "rss", "name": "bad name!", "url": "https://a/feed"}, "ingest.sources.0.rss.name"),
    ({"kind": "json", "name": "x", "url": "https://a"}, "items_path: Field required"),
])
def test_bad_source_entries_name_the_key(source: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(ingest={"sources": [source]})
    assert message in str(err.value)


def test_duplicate_source_names_refused() -> None:
    feed = {"kind": "rss", "name": "wire", "url": "https://a/feed"}
    with pytest.raises(ConfigError, match="duplicate source names: wire"):
        load_settings(ingest={"sources": [feed, feed]})


def test_unknown_ingest_key_refused() -> None:
    with pytest.raises(ConfigError, match="ingest.options"):
        load_settings(ingest={"options": {}})


def test_documented_example_config_is_valid() -> None:
    import textwrap
    import tomllib

    import finsentry.ingest as ingest_pkg

    doc = ingest_pkg.__doc__ or ""
    example = textwrap.dedent(doc.split("::", 1)[1])
    settings = load_settings(**tomllib.loads(example))
    kinds = [(s.name, s.kind) for s in settings.ingest.sources]
    assert kinds == [("edgar-8k", "rss"), ("reddit-stocks", "json"), ("sina-roll", "html"),
                     ("portal-articles", "html")]
    assert settings.ingest.sources[3].mode == "article"
    assert settings.ingest.builtin_aliases == ["csi300"]
