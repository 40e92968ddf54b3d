"""One theme taxonomy over the English (20 tweet topics) and Chinese (13 FinNL subjects) heads.

A rule that watches a theme (say central banks and policy) matches documents in both languages
through `theme(language, topic)`; the classifier puts it in `Prediction.extra["theme"]`. Only
topics that really coincide share a theme; the others keep a theme of their own (one language
only), so nothing is silently merged. The table is printed in README.md ("Topics across
languages"); `themes_table()` renders it.
"""

from __future__ import annotations

# theme -> (English topics, Chinese FinNL subjects)
THEMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "central_banks_policy": (("Fed/Central Banks",), ("政策",)),
    "energy": (("Energy/Oil",), ("能源",)),
    "company_news": (("Company/Product News",), ("公司",)),
    "markets": (("Markets",), ("大盘",)),
    "macro": (("Macro",), ("经济",)),
    "politics": (("Politics",), ("政治",)),
    "bonds": (("Treasuries/Corporate Debt",), ("债券",)),
    "currencies": (("Currencies",), ("外汇",)),
    "commodities": (("Gold/Metals/Materials",), ("期货",)),
    "crypto": ((), ("虚拟货币",)),
    "real_estate": ((), ("房地产",)),
    "covid": ((), ("新冠",)),
    "industry": ((), ("行业",)),
    "analyst_update": (("Analyst Update",), ()),
    "dividend": (("Dividend",), ()),
    "earnings": (("Earnings",), ()),
    "financials": (("Financials",), ()),
    "general_news": (("General News/Opinion",), ()),
    "ipo": (("IPO",), ()),
    "legal_regulation": (("Legal/Regulation",), ()),
    "mergers_investments": (("M&A/Investments",), ()),
    "personnel": (("Personnel Change",), ()),
    "stock_commentary": (("Stock Commentary",), ()),
    "stock_movement": (("Stock Movement",), ()),
}
_BY_TOPIC: dict[tuple[str, str], str] = {
    (lang, topic): name for name, (en, zh) in THEMES.items()
    for lang, topics in (("en", en), ("zh", zh)) for topic in topics}


def theme(language: str | None, topic: str) -> str:
    """The shared theme of a (language, topic) pair; '' for no topic or an unknown one."""
    return _BY_TOPIC.get((language or "en", topic), "")


def topics_for(theme_name: str) -> dict[str, tuple[str, ...]]:
    """Per language, the topics a theme covers (what a cross-language rule should match)."""
    en, zh = THEMES.get(theme_name, ((), ()))
    return {"en": en, "zh": zh}


def themes_table() -> str:
    """The Markdown table README.md carries."""
    rows = ["| theme | English topic (tweets) | Chinese topic (FinNL) |", "|---|---|---|"]
    for name, (en, zh) in THEMES.items():
        rows.append(f"| {name} | {', '.join(en) or '-'} | {', '.join(zh) or '-'} |")
    return "\n".join(rows)
