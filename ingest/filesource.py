"""Bulk imports and replays from JSONL, CSV or Parquet files (read with pandas)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from finsentry.errors import IngestError
from finsentry.ingest.base import FetchReport, Item, Source, SourceSpec
from finsentry.ingest.parsing import parse_time

if TYPE_CHECKING:
    import pandas as pd

    from finsentry.ingest.http import Fetcher


class FileSpec(SourceSpec):
    kind: Literal["file"] = "file"
    path: Path
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    interval_s: float = Field(3600.0, gt=0)
    jitter_s: float = Field(0.0, ge=0)
    max_items: int = Field(1_000_000, ge=1)
    title_column: str | None = "title"
    text_column: str = "text"
    url_column: str | None = "url"
    time_column: str | None = "published_at"
    time_format: str = "auto"
    tickers_column: str | None = Field("tickers", description="List or comma-separated text")
    text_is_html: bool = False
    metadata_columns: list[str] = Field(default_factory=list)


class FileSource(Source):
    spec_class = FileSpec

    def fetch(self, fetcher: Fetcher) -> FetchReport:
        spec = self.spec
        assert isinstance(spec, FileSpec)
        report = FetchReport(pages=1)
        rows = self._rows(report)
        for idx, row in enumerate(rows[: spec.max_items]):
            try:
                item = self._item(row)
                item.page_url, item.position = str(spec.path), idx + 1
                report.items.append(item)
            except (ValueError, TypeError, OverflowError, KeyError) as exc:
                reason = f"source {spec.name}: {spec.path}: row {idx + 1}: {exc}"
                report.errors.append(reason)
                report.rejects.append((str(spec.path), json.dumps(row, default=str).encode(),
                                       reason))
        return report

    def _rows(self, report: FetchReport) -> list[dict[str, Any]]:
        import pandas as pd

        spec = self.spec
        assert isinstance(spec, FileSpec)
        fmt = spec.format
        if fmt == "auto":
            suffix = spec.path.suffix.lower()
            fmt = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
                   ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "jsonl")  # type: ignore
        if not spec.path.is_file():
            raise IngestError(f"source {spec.name}: {spec.path}: file not found")
        try:
            if fmt == "csv":
                frame = pd.read_csv(spec.path, dtype=str, keep_default_na=False)
            elif fmt == "parquet":
                frame = pd.read_parquet(spec.path)
            else:
                return self._jsonl_rows(report)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise IngestError(f"source {spec.name}: {spec.path}: unreadable {fmt}: {exc}") \
                from None
        return _records(frame)

    def _jsonl_rows(self, report: FetchReport) -> list[dict[str, Any]]:
        """Line by line, so one truncated or invalid line is dead-lettered, not the file."""
        spec = self.spec
        assert isinstance(spec, FileSpec)
        rows = []
        with spec.path.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                    if not isinstance(obj, dict):
                        raise ValueError("line is not a JSON object")
                    rows.append(obj)
                except (ValueError, UnicodeDecodeError) as exc:
                    reason = f"source {spec.name}: {spec.path}: line {lineno}: {exc}"
                    report.errors.append(reason)
                    report.rejects.append((str(spec.path), raw, reason))
        return rows

    def _item(self, row: dict[str, Any]) -> Item:
        spec = self.spec
        assert isinstance(spec, FileSpec)
        text = _text(row.get(spec.text_column))
        title = _text(row.get(spec.title_column)) if spec.title_column else ""
        url = _text(row.get(spec.url_column)) if spec.url_column else ""
        published = None
        if spec.time_column and row.get(spec.time_column) not in (None, ""):
            published = parse_time(_scalar(row[spec.time_column]), spec.time_format,
                                   spec.timezone)
        tickers: list[str] = []
        raw_tickers = row.get(spec.tickers_column) if spec.tickers_column else None
        if isinstance(raw_tickers, str):
            tickers = [t.strip().upper() for t in raw_tickers.split(",") if t.strip()]
        elif raw_tickers is not None and hasattr(raw_tickers, "__iter__"):
            tickers = [str(t).upper() for t in raw_tickers if t]
        metadata = {c: _scalar(row[c]) for c in spec.metadata_columns if c in row}
        metadata["file"] = str(spec.path)
        return Item(url=url or None, title=title, body=text, published=published,
                    is_html=spec.text_is_html, tickers=tickers, metadata=metadata)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _scalar(value: Any) -> Any:
    """numpy/pandas scalars to plain Python; NaN to None."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _text(value: Any) -> str:
    value = _scalar(value)
    return "" if value is None else str(value)
