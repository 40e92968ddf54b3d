"""The shared table/JSON format of every benchmark (bench/_results.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _results import Table, emit, fmt, load


def test_table_renders_markdown_and_round_trips(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    t = Table("speed", ["model", "docs/s", "note"])
    t.add("en|sentiment", 1234.5, None)
    t.add("zh", 9.876, "ok")
    t.notes.append("one run")
    with pytest.raises(ValueError, match="3 columns"):
        t.add("too", "few")
    md = t.markdown()
    assert "| model | docs/s | note |" in md and "|---|---:|---|" in md
    assert "| en\\|sentiment | 1,234 | - |" in md and "| zh | 9.88 | ok |" in md
    path = emit("demo", [t], meta={"threads": 2}, command="cmd --x", out_dir=tmp_path)
    assert "# demo benchmark" in capsys.readouterr().out
    record, tables = load(path)
    assert record["command"] == "cmd --x" and record["meta"] == {"threads": 2}
    assert record["machine"]["cores"] >= 1 and "load_avg_1m" in record["machine"]
    assert tables[0].rows[0][1] == 1234.5  # raw numbers in the JSON
    assert json.loads(path.read_text())["tables"][0]["notes"] == ["one run"]


def test_from_markdown_parses_existing_row_lists() -> None:
    t = Table.from_markdown("acc", ["| model | n | acc |", "|---|---:|---:|",
                                    "| en | 1,000 | 0.8290 |"])
    assert t.columns == ["model", "n", "acc"] and t.rows == [["en", 1000, 0.829]]
    note = Table.from_markdown("gpu", ["no CUDA device here"])
    assert note.rows == [["no CUDA device here"]]


def test_fmt() -> None:
    assert [fmt(None), fmt(True), fmt(0.0), fmt(0.004), fmt(12.34), fmt(3)] == \
        ["-", "yes", "0.00", "0.004", "12.3", "3"]
