"""Benchmark of the crawler's CPU path (not a test): normalise + dedup + novelty, documents/s.

    python bench/ingest.py [--docs 60000] [--windows 2,24] [--results DIR] [--out FILE]
    python bench/ingest.py --smoke          # 2,000 documents, for the smoke test

A generated corpus (English and Chinese stories with tickers, HTML and plain bodies, short
posts; a fifth are rewrites of earlier stories, a few are exact repeats) spread over five
simulated days goes through `normalise` once, then through the novelty index (MinHash LSH +
SQLite state) at two dedup windows. Signatures older than two windows are forgotten as the
stream's clock advances, so the index holds about 2 x window x rate signatures: the table shows
the cost per document at both sizes. Figures are CPU seconds of this process (the machine is
shared; wall time would measure the neighbours), and the JSON is written for the record.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _results import emit_report

from finsentry.config import IngestSettings
from finsentry.ingest.base import Item, SourceSpec
from finsentry.ingest.dedup import NoveltyIndex, shared_lines
from finsentry.ingest.normalise import TickerLinker, load_aliases, normalise
from finsentry.ingest.state import StateStore
from finsentry.records import Document

SPAN_H = 120.0  # the corpus covers five days
BATCH = 250  # documents per simulated crawl run (one transaction each, as the crawler does)

US = [("AAPL", "Apple"), ("MSFT", "Microsoft"), ("NVDA", "Nvidia"), ("AMZN", "Amazon"),
      ("TSLA", "Tesla"), ("JPM", "JPMorgan"), ("XOM", "Exxon"), ("WMT", "Walmart")]
CN = ["贵州茅台", "宁德时代", "招商银行", "中国平安", "比亚迪", "五粮液", "隆基绿能", "中信证券"]
EN_VERBS = ["raised its outlook", "cut its forecast", "beat estimates", "missed estimates",
            "announced a buyback", "named a new chief executive", "faces a regulatory probe",
            "signed a supply deal", "reported record revenue", "delayed a product launch"]
EN_FILL = ["Analysts said the results reflected stronger demand in its core markets.",
           "Shares moved sharply in early trading as investors digested the news.",
           "The company did not comment beyond its statement.",
           "Margins improved for a third straight quarter on lower input costs.",
           "Guidance for the full year was left unchanged.",
           "Trading volume was roughly twice the daily average."]
ZH_VERBS = ["发布年度报告", "宣布回购计划", "一季度净利润同比增长", "获得大额订单", "股价创出新高",
            "下调全年业绩预期", "收到监管问询函", "签署战略合作协议"]
WORDS = ("revenue margin guidance quarter demand supply chip cloud retail bank loan deposit "
         "yield bond equity dividend buyback merger deal tariff export factory plant battery "
         "vehicle software license lawsuit probe recall outage upgrade downgrade target price "
         "analyst investor board executive hiring layoffs contract order backlog inventory "
         "pricing volume shipment region europe asia america growth decline record forecast "
         "estimate consensus surprise restructuring spinoff listing offering stake").split()
HANZI = "营收利润增长下降订单市场行业公司股价回购分红投资项目产能电池汽车银行保险证券基金研发海外"
POSTS = ["to the moon", "puts printing", "bought more", "selling here"]
ZH_FILL = ["分析人士认为，公司基本面保持稳健。", "市场成交额较前一交易日有所放大。",
           "公司表示将继续加大研发投入。", "多家机构上调了目标价。", "行业景气度持续回升。"]


@dataclass
class Generated:
    item: Item
    spec: SourceSpec


def corpus(n: int, seed: int = 7) -> list[Generated]:
    """`n` items in publication order: new stories, rewrites (20%), exact repeats (3%)."""
    rng = random.Random(seed)
    specs = {name: SourceSpec(kind="bench", name=name, language=lang)
             for name, lang in (("wire", None), ("portal", "zh"), ("forum", "en"))}
    start = datetime(2024, 5, 6, tzinfo=UTC)
    out: list[Generated] = []
    stories: list[tuple[str, str]] = []
    for i in range(n):
        when = start + timedelta(hours=SPAN_H * i / n)
        roll = rng.random()
        if stories and roll < 0.03:
            title, body = rng.choice(stories[-500:])  # an exact repeat at another URL
        elif stories and roll < 0.23:
            title, body = rng.choice(stories[-300:])
            words = body.split(" ")
            for _ in range(max(1, len(words) // 12)):  # a light rewrite
                words[rng.randrange(len(words))] = rng.choice(["reportedly", "also", "今日"])
            body = " ".join(words) + " " + rng.choice(EN_FILL)
        elif rng.random() < 0.35:
            name = rng.choice(CN)
            title = f"{name}{rng.choice(ZH_VERBS)}"
            body = "".join(rng.sample(ZH_FILL, 2)) + "".join(
                rng.choices(HANZI, k=rng.randint(40, 90))) + f"，{name}表示，第{i}号公告已披露。"
            stories.append((title, body))
        elif rng.random() < 0.3:
            sym, _ = rng.choice(US)
            title, body = "", f"${sym} {rng.choice(POSTS)} #{i}"
        else:
            sym, name = rng.choice(US)
            title = f"{name} {rng.choice(EN_VERBS)} {rng.choice(WORDS)} {rng.choice(WORDS)}"
            body = f"{name} ({sym}) {rng.choice(EN_VERBS)}. " + " ".join(
                " ".join(rng.choices(WORDS, k=rng.randint(8, 14))).capitalize() + "."
                for _ in range(rng.randint(3, 6)))
            stories.append((title, body))
        html = rng.random() < 0.3
        text = f"<p>{body}</p><script>track({i})</script>" if html else body
        source = "portal" if any("\u4e00" <= ch <= "\u9fff" for ch in body[:40]) else \
            "forum" if body.startswith("$") else "wire"
        out.append(Generated(Item(url=f"https://{source}.example/s/{i}", title=title, body=text,
                                  published=when, is_html=html, page_url="bench",
                                  position=i), specs[source]))
    return out


def run_dedup(docs: list[Document], window_h: float) -> dict[str, float]:
    """The crawler's admit path (assess, remember, commit) over the stream at one window."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = IngestSettings.model_validate({"state_dir": tmp,
                                                  "novelty_window_h": window_h})
        state = StateStore(Path(tmp) / "state.sqlite3")
        index = NoveltyIndex(settings, state)
        held: deque[tuple[float, str]] = deque()  # (published ts, doc id) in stream order
        kinds = {"new": 0, "duplicate": 0, "near_duplicate": 0}
        peak = 0
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        for lo in range(0, len(docs), BATCH):
            batch = docs[lo:lo + BATCH]
            now = batch[0].published_at.timestamp()
            while held and held[0][0] < now - 2 * window_h * 3600:  # the stream's clock
                index.forget(held.popleft()[1])
            boiler = shared_lines([d.text for d in batch])
            sigs = [index.signature(d, boiler) for d in batch]
            with state.lock, state.transaction() as conn:
                for doc, sig in zip(batch, sigs, strict=True):
                    verdict = index.assess(doc, sig)
                    kinds[verdict.kind] += 1
                    if verdict.kind == "duplicate":
                        continue
                    index.remember(conn, doc, verdict, sig)
                    index.committed(doc, sig)
                    if sig is not None:
                        held.append((doc.published_at.timestamp(), doc.id))
            peak = max(peak, len(index._sigs))
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        state.close()
    return {"window_h": window_h, "signatures_held_peak": peak, "cpu_s": cpu, "wall_s": wall,
            "docs_per_cpu_s": len(docs) / cpu, "us_per_doc_cpu": cpu / len(docs) * 1e6,
            **{f"verdict_{k}": v for k, v in kinds.items()}}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=60_000)
    ap.add_argument("--windows", default="2,24", help="two dedup windows in hours")
    ap.add_argument("--out", type=Path, default=None, help="also write the raw figures here")
    ap.add_argument("--smoke", action="store_true", help="2,000 documents (for tests)")
    ap.add_argument("--results", type=Path, default=None, help="results folder (tables)")
    args = ap.parse_args(argv)
    n = 2_000 if args.smoke else args.docs
    windows = [float(w) for w in args.windows.split(",")]
    items = corpus(n)
    linker = TickerLinker(load_aliases({s: [name] for s, name in US}, ["csi300"]))
    fetched = datetime(2024, 5, 12, tzinfo=UTC)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    docs = [normalise(g.item, g.spec, linker, fetched) for g in items]
    norm_cpu, norm_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    rows = [run_dedup(docs, w) for w in windows]
    for row in rows:
        total = norm_cpu + float(row["cpu_s"])
        row["pipeline_docs_per_cpu_s"] = n / total
        row["pipeline_us_per_doc_cpu"] = total / n * 1e6
    result: dict[str, object] = {
        "documents": n, "normalise_cpu_s": norm_cpu, "normalise_wall_s": norm_wall,
        "normalise_docs_per_cpu_s": n / norm_cpu, "windows": rows,
        "dedup_cost_ratio_large_vs_small": rows[-1]["us_per_doc_cpu"] / rows[0]["us_per_doc_cpu"],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    lines = [f"{n} documents; normalise: {n / norm_cpu:,.0f} docs per CPU-s "
             f"({norm_cpu / n * 1e6:,.0f} us/doc)", "",
             "| window | signatures held (peak) | dedup+novelty us/doc (CPU) | "
             "pipeline docs per CPU-s | pipeline us/doc | new / near-dup / dup |",
             "|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['window_h']:g} h | {r['signatures_held_peak']:,} | "
                     f"{r['us_per_doc_cpu']:,.0f} | {r['pipeline_docs_per_cpu_s']:,.0f} | "
                     f"{r['pipeline_us_per_doc_cpu']:,.0f} | {r['verdict_new']} / "
                     f"{r['verdict_near_duplicate']} / {r['verdict_duplicate']} |")
    lines += ["", "dedup cost per document, large window / small window: "
              f"{result['dedup_cost_ratio_large_vs_small']:.2f}"]
    emit_report("ingest", "\n".join(lines) + "\n", out_dir=args.results, meta=result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
