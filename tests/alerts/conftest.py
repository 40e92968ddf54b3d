"""Alert-test fixtures: a real SMTP server (aiosmtpd) on a free loopback port, and scored
documents with a negative burst for one ticker, written through the store's ScoredSink."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from finsentry.records import (
    Document,
    ScoredDocument,
    Sentiment,
    SentimentProbs,
    TickerMention,
)

AS_OF = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script> AAPL & co <b>plunge</b>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[list[str]] = []  # RCPT TO of each message

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append(list(envelope.rcpt_tos))
        return "250 OK"

    def wait_for(self, n: int, timeout: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A started SMTP server; `smtp.inbox.messages` are the mails it accepted."""
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpServer]:
    """An SMTP server on a free port that is NOT started yet (connections are refused)."""
    server = SmtpServer(free_port())
    yield server
    server.stop()


def scored(i: int, ticker: str, minute: datetime, negative: bool, *, run_id: str = "live",
           title: str | None = None) -> ScoredDocument:
    sentiment: Sentiment = "negative" if negative else ("positive" if i % 2 else "neutral")
    probs = {"negative": 0.05, "neutral": 0.05, "positive": 0.05}
    probs[sentiment] = 0.9
    doc = Document.create(
        source="test-wire", url=f"https://news.example.com/{ticker}/{i}",
        title=title or f"{ticker} story {i}", text=f"body {i} about {ticker}",
        published_at=minute, tickers=[TickerMention(symbol=ticker, relevance=1.0)], language="en")
    return ScoredDocument(
        document=doc, sentiment=sentiment, sentiment_probs=SentimentProbs(**probs),
        score=probs["positive"] - probs["negative"], topic="markets",
        topic_probs={"markets": 0.9}, model_name="test-model", model_version="0", run_id=run_id)


def stream(ticker: str, *, baseline_neg: float, window_docs: int, window_neg: int,
           start: int = 0, baseline_docs: int = 40, titles: dict[int, str] | None = None,
           as_of: datetime = AS_OF) -> list[ScoredDocument]:
    """`baseline_docs` over the 24 h before the last 15 min (share `baseline_neg` negative),
    then `window_docs` in the last 15 min, the first `window_neg` of them negative."""
    docs = []
    for k in range(baseline_docs):  # negatives spread evenly over the day
        minute = as_of - timedelta(minutes=20 + k * (1400 // baseline_docs))
        negative = int((k + 1) * baseline_neg + 1e-9) > int(k * baseline_neg + 1e-9)
        docs.append(scored(start + k, ticker, minute, negative=negative))
    for k in range(window_docs):
        minute = as_of - timedelta(minutes=14 - k % 14, seconds=k)
        i = start + baseline_docs + k
        docs.append(scored(i, ticker, minute, negative=k < window_neg,
                           title=(titles or {}).get(k)))
    return docs


def burst_docs() -> list[ScoredDocument]:
    """AAPL turns negative (with a hostile headline); MSFT quiet; TSLA always gloomy (fails the
    baseline factor); NVDA all negative but too few documents (fails min_docs)."""
    return (stream("AAPL", baseline_neg=0.1, window_docs=10, window_neg=8, titles={7: HOSTILE})
            + stream("MSFT", baseline_neg=0.1, window_docs=10, window_neg=1, start=1000)
            + stream("TSLA", baseline_neg=0.6, window_docs=10, window_neg=7, start=2000)
            + stream("NVDA", baseline_neg=0.0, window_docs=3, window_neg=3, start=3000))


def quiet_docs() -> list[ScoredDocument]:
    return (stream("MSFT", baseline_neg=0.1, window_docs=10, window_neg=1, start=1000)
            + stream("AAPL", baseline_neg=0.2, window_docs=12, window_neg=2))
