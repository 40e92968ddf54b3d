"""A generated sample stream of financial headlines and comments (written for this project).

Deterministic for a seed: a few hours of news and forum chatter about a handful of issuers, in
English and Chinese, with one injected burst of negative news about one ticker, so the demo
(and alert backtests) have a spike to find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from finsentry.records import Document, TickerMention

COMPANIES = {
    "AAPL": "Apple", "MSFT": "Microsoft", "JPM": "JPMorgan Chase", "XOM": "Exxon Mobil",
    "TSLA": "Tesla", "NVDA": "Nvidia", "BAC": "Bank of America", "PFE": "Pfizer",
}
BURST_TICKER = "BAC"

POSITIVE = [
    "{name} beats quarterly earnings estimates as revenue rises {pct}%",
    "{name} raises full-year guidance after strong demand",
    "{name} announces ${bn} billion share buyback and dividend increase",
    "Analysts upgrade {name} to buy, citing margin expansion",
    "{name} shares jump {pct}% after record quarterly profit",
    "{name} wins major contract worth ${bn} billion",
]
NEUTRAL = [
    "{name} to present at investor conference next week",
    "{name} schedules third-quarter earnings call for {day}",
    "{name} appoints new chief financial officer",
    "{name} files annual report with the SEC",
    "{name} shares little changed ahead of Fed decision",
    "{name} completes previously announced debt offering",
]
NEGATIVE = [
    "{name} misses earnings estimates, cuts outlook",
    "{name} shares slide {pct}% after profit warning",
    "Regulators open probe into {name} accounting practices",
    "{name} faces class action lawsuit over disclosures",
    "Moody's downgrades {name} debt on weaker cash flow",
    "{name} announces layoffs of {k},000 employees amid slowing sales",
]
BURST = [
    "{name} hit by trading losses, shares tumble {pct}%",
    "Report: {name} under investigation for misreporting loan losses",
    "{name} CFO resigns abruptly as regulators widen probe",
    "Ratings agency puts {name} on review for downgrade",
    "Depositors pull funds from {name} after loss disclosure",
    "${ticker} is collapsing, this is getting ugly. Selling everything",
    "{name} suspends dividend after unexpected quarterly loss",
    "{name} shares plunge {pct}% after profit warning",
    "{name} swings to a quarterly net loss and misses estimates",
    "Investors sue {name} over hidden trading losses",
    "Moody's downgrades {name} as bad loans pile up",
    "{name} cuts full-year outlook as loan defaults climb",
]
COMMENTS_EN = [
    ("${ticker} looking strong into earnings, adding more", "positive"),
    ("${ticker} chart breaking out, bullish", "positive"),
    ("Holding ${ticker} for the long run, no change", "neutral"),
    ("${ticker} volume is light today", "neutral"),
    ("${ticker} guidance was terrible, I'm out", "negative"),
    ("Dumped my ${ticker} shares, this company is a mess", "negative"),
]
COMMENTS_ZH = [
    ("{name}业绩超预期，继续持有，看好后市", "positive"),
    ("{name}今天放量上涨，主力资金流入明显", "positive"),
    ("{name}明天公布财报，先观望一下", "neutral"),
    ("{name}业绩暴雷，股价暴跌，赶紧跑", "negative"),
    ("{name}被监管立案调查，利空消息太多了", "negative"),
]
SOURCES_NEWS = ["newswire", "markets-daily", "sec-edgar"]
SOURCES_SOCIAL = ["stocktwits", "reddit", "guba"]


@dataclass(frozen=True)
class SampleStream:
    documents: list[Document]
    burst_ticker: str
    burst_start: datetime
    burst_end: datetime


def generate(n: int = 600, seed: int = 7, start: datetime | None = None,
             hours: float = 6.0) -> SampleStream:
    """n documents spread over `hours`, plus a 20-minute negative burst about BURST_TICKER."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not crypto
    start = start or datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    burst_start = start + timedelta(hours=hours * 0.6)
    burst_end = burst_start + timedelta(minutes=20)
    n_burst = max(10, n // 12)
    docs: list[Document] = []
    for i in range(n - n_burst):
        at = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        docs.append(_one(rng, i, at))
    for j in range(n_burst):
        at = burst_start + timedelta(seconds=rng.uniform(0, 20 * 60))
        text = rng.choice(BURST).format(name=COMPANIES[BURST_TICKER], ticker=BURST_TICKER,
                                        pct=rng.randint(6, 25))
        social = text.startswith("$")
        if social:
            text = f"{text} #{seed}-{j}"
        docs.append(Document.create(
            source=rng.choice(SOURCES_SOCIAL if social else SOURCES_NEWS),
            title="" if social else text, text=text if social else _body(rng, text),
            url=None if social else f"https://news.example.com/burst/{j}-{seed}",
            published_at=at, language="en",
            tickers=[TickerMention(symbol=BURST_TICKER, relevance=1.0)],
            metadata={"sample": True, "burst": True, "n": j},
        ))
    docs.sort(key=lambda d: d.published_at)
    return SampleStream(docs, BURST_TICKER, burst_start, burst_end)


def _body(rng: random.Random, headline: str) -> str:
    tail = rng.choice([
        "The company said in a statement on its website.",
        "Shares were volatile in early trading.",
        "The move was first reported by a financial newswire.",
    ])
    return f"{headline}. {tail}"


def _one(rng: random.Random, i: int, at: datetime) -> Document:
    ticker = rng.choice(list(COMPANIES))
    name = COMPANIES[ticker]
    kind = rng.random()
    fields = {"pct": rng.randint(2, 15), "bn": rng.randint(1, 40), "k": rng.randint(1, 12),
              "day": rng.choice(["Tuesday", "Wednesday", "Thursday"]), "name": name,
              "ticker": ticker}
    mention = [TickerMention(symbol=ticker, relevance=1.0)]
    if kind < 0.55:  # news headline
        pool = rng.choices([POSITIVE, NEUTRAL, NEGATIVE], weights=[0.35, 0.45, 0.2])[0]
        title = rng.choice(pool).format(**fields)
        return Document.create(source=rng.choice(SOURCES_NEWS), title=title,
                               text=_body(rng, title),
                               url=f"https://news.example.com/{ticker.lower()}/{i}",
                               published_at=at, language="en", tickers=mention,
                               metadata={"sample": True})
    if kind < 0.85:
        text, _ = rng.choice(COMMENTS_EN)
        return Document.create(source=rng.choice(SOURCES_SOCIAL[:2]), text=text.format(**fields)
                               + f" #{i}", published_at=at, language="en", tickers=mention,
                               metadata={"sample": True})
    text, _ = rng.choice(COMMENTS_ZH)
    return Document.create(source="guba", text=text.format(**fields) + f"（{i}楼）",
                           published_at=at, language="zh", tickers=mention,
                           metadata={"sample": True})
