"""Politeness and safety of the fetcher over real sockets: backoff, robots.txt, SSRF, limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finsentry.config import IngestSettings
from finsentry.errors import IngestError
from finsentry.ingest.crawler import Crawler
from finsentry.ingest.http import (
    AddressGuard,
    BlockedURLError,
    Fetcher,
    HTTPStatusError,
    ResponseTooLargeError,
    RobotsDisallowedError,
    parse_retry_after,
)

from .conftest import FixtureServer, Route, make_settings


def fetcher_for(tmp_path: Path, **over: Any) -> tuple[Fetcher, list[float]]:
    settings = make_settings(tmp_path, [], **over).ingest
    fetcher = Fetcher(settings)
    waits: list[float] = []
    fetcher.sleep = waits.append  # record the backoff instead of sleeping it
    return fetcher, waits


def test_429_retry_after_and_503_burst_are_retried(tmp_path: Path,
                                                   server: FixtureServer) -> None:
    server.add("/feed", Route(body=b"ok", script=[(429, {"Retry-After": "3"}), (503, {}),
                                                  (503, {})]))
    fetcher, waits = fetcher_for(tmp_path, retry_attempts=5)
    resp = fetcher.get(server.url("/feed"), source="wire")
    assert resp is not None and resp.content == b"ok"
    assert [h.status for h in server.hits_for("/feed")] == [429, 503, 503, 200]
    assert waits[0] >= 3.0  # Retry-After honoured
    assert len(waits) == 3 and all(w <= 0.05 for w in waits[1:])  # exponential, capped


def test_retry_after_is_capped_and_http_date_understood(tmp_path: Path) -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None


def test_503_burst_beyond_attempts_fails_naming_source_and_url(tmp_path: Path,
                                                               server: FixtureServer) -> None:
    server.add("/feed", Route(body=b"ok", script=[(503, {})] * 6))
    fetcher, waits = fetcher_for(tmp_path, retry_attempts=3, max_retry_after_s=1.0)
    with pytest.raises(HTTPStatusError) as err:
        fetcher.get(server.url("/feed"), source="wire")
    assert err.value.status == 503
    assert str(err.value) == f"source wire: {server.url('/feed')}: HTTP 503"
    assert len(server.hits_for("/feed")) == 3 and len(waits) == 2


def test_404_is_not_retried(tmp_path: Path, server: FixtureServer) -> None:
    fetcher, waits = fetcher_for(tmp_path)
    with pytest.raises(HTTPStatusError):
        fetcher.get(server.url("/missing"), source="wire")
    assert len(server.hits_for("/missing")) == 1 and waits == []


def test_timeout_is_retried_then_reported(tmp_path: Path, server: FixtureServer) -> None:
    server.add("/slow", Route(body=b"late", delay_s=1.5))
    fetcher, _ = fetcher_for(tmp_path, timeout_s=0.3, retry_attempts=2)
    with pytest.raises(IngestError, match=r"source wire: .*/slow: ReadTimeout"):
        fetcher.get(server.url("/slow"), source="wire")


def test_robots_disallow_is_obeyed(tmp_path: Path, server: FixtureServer) -> None:
    server.robots = ("User-agent: finsentry-tests\nDisallow: /private/\n\n"
                     "User-agent: *\nDisallow: /\n")
    server.add("/private/feed.rss", Route(body=b"secret"))
    server.add("/public/feed.rss", Route(body=b"fine"))
    fetcher, _ = fetcher_for(tmp_path)
    with pytest.raises(RobotsDisallowedError, match="disallowed by robots.txt"):
        fetcher.get(server.url("/private/feed.rss"), source="wire")
    assert server.hits_for("/private/feed.rss") == []
    resp = fetcher.get(server.url("/public/feed.rss"), source="wire")
    assert resp is not None and resp.content == b"fine"
    assert len(server.hits_for("/robots.txt")) == 1  # cached per host


def test_robots_5xx_means_disallow_and_4xx_means_allow(tmp_path: Path,
                                                       server: FixtureServer) -> None:
    server.add("/robots.txt", Route(status=500, body=b"boom"))
    server.add("/feed", Route(body=b"x"))
    fetcher, _ = fetcher_for(tmp_path, retry_attempts=1)
    with pytest.raises(RobotsDisallowedError):
        fetcher.get(server.url("/feed"), source="wire")
    server.routes[("/robots.txt", None)] = Route(status=404)
    fetcher2, _ = fetcher_for(tmp_path, retry_attempts=1)
    assert fetcher2.get(server.url("/feed"), source="wire") is not None


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/iam/",
                                    "http://10.0.0.7/admin", "http://[::1]:8080/"])
def test_redirect_to_private_address_is_refused(tmp_path: Path, server: FixtureServer,
                                                target: str) -> None:
    server.add("/go", Route(status=302, headers={"Location": target}))
    fetcher, _ = fetcher_for(tmp_path)  # 127.0.0.1/32 allowed for the fixture server only
    with pytest.raises(BlockedURLError, match="non-public address"):
        fetcher.get(server.url("/go"), source="wire")


@pytest.fixture
def server2() -> Iterator[FixtureServer]:
    srv = FixtureServer(host="127.0.0.2")
    yield srv
    srv.close()


def test_redirect_to_127_0_0_1_is_refused(tmp_path: Path, server: FixtureServer,
                                          server2: FixtureServer) -> None:
    """Only the fixture server's own address is allowed; a hop to 127.0.0.1 is not."""
    server.add("/internal", Route(body=b"internal secrets"))
    server2.add("/go", Route(status=301, headers={"Location": server.url("/internal")}))
    fetcher, _ = fetcher_for(tmp_path, allow_networks=["127.0.0.2/32"])
    with pytest.raises(BlockedURLError, match="127.0.0.1"):
        fetcher.get(server2.url("/go"), source="wire")
    assert server.hits == []  # nothing ever reached 127.0.0.1


def test_configured_loopback_url_refused_unless_allowed(tmp_path: Path,
                                                        server: FixtureServer) -> None:
    server.add_file("/feed.atom", "newsroom.atom", "application/atom+xml")
    spec = {"kind": "rss", "name": "local", "url": server.url("/feed.atom")}
    crawler = Crawler(make_settings(tmp_path, [spec], allow_networks=[]))
    result = crawler.run_source("local", deliver=False)
    assert result.new == 0 and result.failed == 1 and "non-public address" in result.errors[0]
    assert server.hits == []
    localhost = server.url("/feed.atom").replace("127.0.0.1", "localhost")
    with pytest.raises(BlockedURLError):
        AddressGuard([]).check(localhost, "local")


def test_guard_allows_public_and_rejects_odd_schemes() -> None:
    guard = AddressGuard([], resolver=lambda host, port: ["93.184.215.14"])
    guard.check("https://www.sec.gov/cgi-bin/browse-edgar?action=getcurrent", "edgar")
    mapped = AddressGuard([], resolver=lambda host, port: ["::ffff:169.254.169.254"])
    with pytest.raises(BlockedURLError):
        mapped.check("http://metadata.example/", "x")
    with pytest.raises(BlockedURLError, match="only http"):
        guard.check("file:///etc/passwd", "x")


def test_huge_response_is_cut_off(tmp_path: Path, server: FixtureServer) -> None:
    server.add("/huge", Route(body=b"<rss>" + b"x" * 50_000))
    fetcher, _ = fetcher_for(tmp_path, max_response_bytes=10_000)
    with pytest.raises(ResponseTooLargeError, match="10000 bytes"):
        fetcher.get(server.url("/huge"), source="wire")


def test_settings_forbid_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        IngestSettings.model_validate({"sources": [], "politeness": 3})


def test_per_host_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from finsentry.ingest import http

    clock = [100.0]
    slept: list[float] = []
    monkeypatch.setattr(http.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(http.time, "sleep", slept.append)
    limiter = http.HostRateLimiter(2.0)
    limiter.wait("www.sec.gov")
    limiter.wait("www.reddit.com")  # another host: no wait
    assert slept == []
    limiter.wait("www.sec.gov")
    limiter.wait("www.sec.gov")  # queued behind the previous slot
    assert slept == [2.0, 4.0]


def test_connection_goes_to_the_vetted_address(tmp_path: Path, server: FixtureServer) -> None:
    """The name is resolved once and checked; the request is sent to that address (no second
    lookup a rebinding DNS server could answer differently), with the name in Host."""
    server.add("/feed", Route(body=b"pinned"))
    settings = make_settings(tmp_path, []).ingest
    fetcher = Fetcher(settings, resolver=lambda host, port: ["127.0.0.1"])
    url = f"http://news.invalid:{server.port}/feed"  # .invalid never resolves in real DNS
    resp = fetcher.get(url, source="wire")
    assert resp is not None and resp.content == b"pinned" and resp.url == url
    assert server.hits_for("/feed")[0].headers["host"] == f"news.invalid:{server.port}"
    blocked = Fetcher(settings, resolver=lambda host, port: ["127.0.0.1", "169.254.169.254"])
    with pytest.raises(BlockedURLError, match="169.254.169.254"):
        blocked.get(url, source="wire")
