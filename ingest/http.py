"""The one polite HTTP client every source goes through.

Why one place: the crawler runs inside a bank's network, so every hop (configured URL, redirect,
robots.txt) is checked against private/loopback/link-local ranges; every host gets a rate limit,
robots.txt (RFC 9309), a real User-Agent, conditional GET, bounded retries honouring Retry-After,
timeouts and a response-size cap.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from finsentry.config import IngestSettings
from finsentry.errors import IngestError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedURLError(IngestError):
    """A URL or redirect resolves to an address the crawler must not reach."""


class RobotsDisallowedError(IngestError):
    """robots.txt forbids our User-Agent from fetching the URL."""


class ResponseTooLargeError(IngestError):
    """The body exceeded `ingest.max_response_bytes`."""


class HTTPStatusError(IngestError):
    """A non-success status after retries (the message names the URL and status)."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ValidatorStore(Protocol):
    """Where ETag/Last-Modified validators persist between runs (see `state.StateStore`)."""

    def get_validators(self, url: str) -> tuple[str | None, str | None]: ...

    def set_validators(self, url: str, etag: str | None, last_modified: str | None) -> None: ...


@dataclass
class Response:
    url: str  # final URL after redirects
    status: int
    headers: httpx.Headers
    content: bytes
    validators: tuple[str | None, str | None] = (None, None)

    @property
    def charset(self) -> str | None:
        """Charset from the Content-Type header only (HTML sources also look at <meta>)."""
        ctype = self.headers.get("content-type", "")
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip("\"' ").lower()
        return None

    def text(self) -> str:
        return self.content.decode(self.charset or "utf-8", errors="replace")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class AddressGuard:
    """Refuses hosts resolving to non-public addresses unless the network is allowed in config."""

    def __init__(self, allowed: list[str],
                 resolver: Callable[[str, int], list[str]] | None = None) -> None:
        self.allowed = [ipaddress.ip_network(a, strict=False) for a in allowed]
        self._resolve = resolver or _resolve

    def check(self, url: str, source: str) -> str:
        """Return the address to connect to; raise BlockedURLError if any is not allowed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise BlockedURLError(f"source {source}: {url}: only http(s) URLs are fetched")
        host = parts.hostname
        if not host:
            raise BlockedURLError(f"source {source}: {url}: URL has no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self._resolve(host, port)
        except OSError as exc:
            raise IngestError(f"source {source}: {url}: cannot resolve {host}: {exc}") from None
        for raw in addresses:
            ip: IPAddress = ipaddress.ip_address(raw.split("%")[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            if _is_public(ip) or any(ip in net for net in self.allowed):
                continue
            raise BlockedURLError(
                f"source {source}: {url}: {host} resolves to non-public address {ip} "
                "(allow it in ingest.allow_networks if this is intended)")
        if not addresses:
            raise IngestError(f"source {source}: {url}: {host} has no address")
        return addresses[0].split("%")[0]


def _resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port)})


def _is_public(ip: IPAddress) -> bool:
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)


class HostRateLimiter:
    """At most one request per host every `min_interval_s` (shared by all sources)."""

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + self.min_interval_s
        if slot > now:
            time.sleep(slot - now)


@dataclass
class _Robots:
    parser: urllib.robotparser.RobotFileParser | None  # None = everything allowed
    disallow_all: bool = False
    fetched_at: float = field(default_factory=time.monotonic)
    why: str = "disallowed by robots.txt"


class Fetcher:
    """GET with every politeness and safety rule applied; one per crawler, thread-safe."""

    def __init__(self, settings: IngestSettings, validators: ValidatorStore | None = None,
                 transport: httpx.BaseTransport | None = None,
                 resolver: Callable[[str, int], list[str]] | None = None) -> None:
        self.settings = settings
        self.guard = AddressGuard(settings.allow_networks, resolver)
        self.limiter = HostRateLimiter(settings.host_min_interval_s)
        self.validators = validators
        # per source: validators waiting for that source's items to be persisted
        self._pending: dict[str, dict[str, tuple[str | None, str | None]]] = {}
        self._robots: dict[str, _Robots] = {}
        self._lock = threading.Lock()
        self.client = httpx.Client(
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(settings.timeout_s),
            follow_redirects=False, transport=transport,
        )
        self.sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        self.client.close()

    # -- public API -------------------------------------------------------------------------
    def get(self, url: str, *, source: str, conditional: bool = True,
            params: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> Response | None:
        """Fetch `url`; None on 304 Not Modified. Raises IngestError naming source and URL."""
        if params:
            url = str(httpx.URL(url).copy_merge_params(params))
        extra = dict(headers or {})
        if conditional and self.validators is not None:
            etag, modified = self.validators.get_validators(url)
            if etag:
                extra["If-None-Match"] = etag
            if modified:
                extra["If-Modified-Since"] = modified
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.retry_attempts),
            retry=retry_if_exception(_retryable), wait=self._wait, sleep=self.sleep,
            reraise=True, before_sleep=lambda rs: log.warning(
                "source %s: %s: retrying after %s", source, url, rs.outcome and
                rs.outcome.exception()),
        )
        resp = retrying(self._get_following_redirects, url, source, extra)
        if resp.status == 304:
            return None
        if conditional and self.validators is not None and any(resp.validators):
            with self._lock:
                self._pending.setdefault(source, {})[url] = resp.validators
        return resp

    def commit_validators(self, source: str) -> None:
        """Persist validators once the caller has stored what the response produced.

        Why deferred: saving an ETag before the items are persisted would turn a crash into a
        304 on the next poll and lose those items.
        """
        if self.validators is None:
            return
        with self._lock:
            items = self._pending.pop(source, {})
        for url, (etag, modified) in items.items():
            self.validators.set_validators(url, etag, modified)

    def discard_validators(self, source: str) -> None:
        with self._lock:
            self._pending.pop(source, None)

    # -- internals --------------------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = min(self.settings.backoff_max_s,
                      self.settings.backoff_base_s * 2 ** (state.attempt_number - 1))
        backoff *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        if isinstance(exc, HTTPStatusError) and exc.retry_after is not None:
            return min(max(exc.retry_after, backoff), self.settings.max_retry_after_s)
        return backoff

    def _get_following_redirects(self, url: str, source: str,
                                 headers: dict[str, str]) -> Response:
        current = url
        for _ in range(self.settings.max_redirects + 1):
            address = self.guard.check(current, source)
            self._check_robots(current, source)
            resp = self._get_once(current, source, headers, address)
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("location")
                if not location:
                    raise IngestError(f"source {source}: {current}: redirect without Location")
                current = urljoin(current, location)
                continue
            return resp
        raise IngestError(f"source {source}: {url}: more than "
                          f"{self.settings.max_redirects} redirects")

    def _get_once(self, url: str, source: str, headers: dict[str, str],
                  address: str) -> Response:
        """One GET to the vetted `address` (not a second DNS lookup: no rebinding window);
        Host header and TLS SNI/certificate check still use the URL's host name."""
        host = urlsplit(url).netloc.lower()
        self.limiter.wait(host)
        limit = self.settings.max_response_bytes
        try:
            target, headers, extensions = _pinned(url, address, headers)
            with self.client.stream("GET", target, headers=headers,
                                    extensions=extensions) as r:
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise ResponseTooLargeError(
                        f"source {source}: {url}: Content-Length {declared} > {limit} bytes")
                chunks: list[bytes] = []
                size = 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ResponseTooLargeError(
                            f"source {source}: {url}: body exceeds {limit} bytes")
                    chunks.append(chunk)
        except httpx.TransportError as exc:
            raise TransientError(f"source {source}: {url}: {type(exc).__name__}: {exc}") from None
        status = r.status_code
        if status in RETRY_STATUSES:
            raise HTTPStatusError(f"source {source}: {url}: HTTP {status}", status,
                                  parse_retry_after(r.headers.get("retry-after")))
        if status >= 400:
            raise HTTPStatusError(f"source {source}: {url}: HTTP {status}", status)
        return Response(url=url, status=status, headers=r.headers,
                        content=b"".join(chunks),
                        validators=(r.headers.get("etag"), r.headers.get("last-modified")))

    def _check_robots(self, url: str, source: str) -> None:
        if not self.settings.respect_robots:
            return
        parts = urlsplit(url)
        if parts.path == "/robots.txt":
            return
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            entry = self._robots.get(origin)
        if entry is None or time.monotonic() - entry.fetched_at > self.settings.robots_ttl_s:
            entry = self._load_robots(origin, source)
            with self._lock:
                self._robots[origin] = entry
        if entry.disallow_all or (entry.parser is not None and not entry.parser.can_fetch(
                self.settings.user_agent, url)):
            raise RobotsDisallowedError(f"source {source}: {url}: {entry.why}")

    def _retry_soon(self) -> float:
        """A failed robots.txt fetch is re-tried after a minute, not after the full TTL."""
        return time.monotonic() - self.settings.robots_ttl_s + min(60.0,
                                                                   self.settings.robots_ttl_s)

    def _load_robots(self, origin: str, source: str) -> _Robots:
        """RFC 9309: 4xx = no rules, 5xx/unreachable = assume everything disallowed."""
        try:
            resp = self._get_following_redirects(origin + "/robots.txt", source, {})
        except HTTPStatusError as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                return _Robots(parser=None)
            log.warning("source %s: %s/robots.txt unavailable (%s): assuming disallow",
                        source, origin, exc)
            return _Robots(parser=None, disallow_all=True, fetched_at=self._retry_soon(),
                           why=f"robots.txt unavailable (HTTP {exc.status}): not crawling")
        except TransientError as exc:
            log.warning("source %s: robots.txt unreachable (%s): assuming disallow", source, exc)
            return _Robots(parser=None, disallow_all=True, fetched_at=self._retry_soon(),
                           why="robots.txt unreachable: not crawling")
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(resp.content.decode("utf-8", errors="replace").splitlines())
        return _Robots(parser=parser)


def _pinned(url: str, address: str,
            headers: dict[str, str]) -> tuple[str, dict[str, str], dict[str, Any]]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.strip("[]") == address:
        return url, headers, {}
    ip_host = f"[{address}]" if ":" in address else address
    netloc = ip_host + (f":{parts.port}" if parts.port else "")
    target = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    host_header = host + (f":{parts.port}" if parts.port else "")
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return target, {**headers, "Host": host_header}, extensions


class TransientError(IngestError):
    """A connection-level failure (timeout, reset) worth retrying."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    return isinstance(exc, HTTPStatusError) and exc.status in RETRY_STATUSES
