"""The file source: JSONL (bad lines dead-lettered), CSV and Parquet via pandas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from finsentry.ingest.crawler import Crawler, RunResult

from .conftest import make_settings

ROWS = [
    {"title": "Microsoft raises dividend 10%", "text": "Microsoft said its board approved a "
     "quarterly dividend increase of 10 percent.", "url": "https://ir.example/msft-div",
     "published_at": "2024-09-16T20:05:00Z", "tickers": "MSFT", "desk": "us"},
    {"title": "", "text": "贵州茅台股东大会召开，管理层表示全年目标不变。", "url": "",
     "published_at": "2024-06-19 10:00:00", "tickers": "", "desk": "cn"},
]


def _run(tmp_path: Path, path: Path, **spec: object) -> RunResult:
    source = {"kind": "file", "name": "replay", "path": str(path), "timezone": "Asia/Shanghai",
              "metadata_columns": ["desk"], **spec}
    crawler = Crawler(make_settings(tmp_path / "state", [source]))
    return crawler.run_source("replay", deliver=False)


def test_jsonl_with_a_truncated_line(tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS]
    lines.insert(1, '{"title": "cut off", "text": "Apple sa')  # truncated write
    lines.append(json.dumps({"title": "", "text": "   "}))  # nothing to classify
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _run(tmp_path, path)
    assert result.new == 2
    assert result.dead_lettered == 2 and result.failed == 2
    errors = result.errors
    assert any("replay.jsonl: line 2" in e for e in errors)
    docs = {d.metadata["desk"]: d for d in result.documents}
    assert docs["us"].published_at == datetime(2024, 9, 16, 20, 5, tzinfo=UTC)
    assert docs["us"].tickers[0].symbol == "MSFT" and docs["us"].tickers[0].relevance == 1.0
    cn = docs["cn"]
    assert cn.url is None and cn.language == "zh"
    assert cn.published_at == datetime(2024, 6, 19, 2, 0, tzinfo=UTC)  # naive = Shanghai
    assert cn.tickers[0].symbol == "600519.SS"


def test_csv_and_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame(ROWS)
    frame.to_csv(tmp_path / "replay.csv", index=False)
    result = _run(tmp_path, tmp_path / "replay.csv")
    assert result.new == 2 and not result.errors
    pq = frame.assign(published_at=pd.to_datetime(
        ["2024-09-16T20:05:00Z", "2024-06-19T02:00:00Z"], utc=True),
        tickers=[["MSFT"], []])
    pq.to_parquet(tmp_path / "replay.parquet")
    result = _run(tmp_path / "pq", tmp_path / "replay.parquet")
    assert result.new == 2 and not result.errors
    us = next(d for d in result.documents if d.metadata["desk"] == "us")
    assert us.published_at == datetime(2024, 9, 16, 20, 5, tzinfo=UTC)
    assert us.tickers[0].symbol == "MSFT"


def test_replaying_the_same_file_emits_nothing_new(tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS), "utf-8")
    source = {"kind": "file", "name": "replay", "path": str(path)}
    crawler = Crawler(make_settings(tmp_path / "state", [source]))
    assert crawler.run_source("replay", deliver=False).new == 2
    again = crawler.run_source("replay", deliver=False)
    assert again.new == 0 and again.duplicate == 2


def test_missing_file_is_a_counted_error(tmp_path: Path) -> None:
    result = _run(tmp_path, tmp_path / "nope.csv")
    assert result.failed == 1 and "nope.csv: file not found" in result.errors[0]
