"""File archives (JSONL and Parquet) replay verbatim: ids, sources, repeated texts kept."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finsentry.config import ClickHouseSettings
from finsentry.errors import ReplayError
from finsentry.replay.runner import Replayer, ReplayPlan
from finsentry.replay.sources import SourceStats, read_archives
from finsentry.store import migrate, open_store
from tests.replay.helpers import T0, scored_stream, settings_for

END = T0 + timedelta(hours=2)


def _jsonl(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_jsonl_and_parquet_archives_keep_ids_sources_and_repeats(tmp_path: Path) -> None:
    docs = scored_stream(40)
    raw = [d.document for d in docs]
    jsonl = _jsonl(tmp_path / "raw.jsonl", [d.model_dump_json() for d in raw[:20]] + ["{oops"])
    records = []
    for d in raw[20:]:
        rec = d.model_dump(mode="json")
        rec["metadata"] = json.dumps(rec["metadata"])  # free-form maps as JSON text in Parquet
        records.append(rec)
    parquet = tmp_path / "raw.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)

    stats = SourceStats()
    items = read_archives([jsonl, parquet], T0, END, stats)
    assert stats.skipped == 1 and "raw.jsonl: line 21" in stats.problems[0]
    assert sorted(i.id for i in items) == sorted(d.id for d in raw)  # nothing dropped
    assert {i.id: (i.source, i.text, i.metadata) for i in items} == {
        d.id: (d.source, d.text, d.metadata) for d in raw}
    repeated = [i for i in items if i.text == "Shares move on the news"]
    assert len(repeated) == 8 and len({i.source for i in repeated}) == 2
    times = [(i.published_at, i.id) for i in items]
    assert times == sorted(times)


def test_scored_archive_replays_scores_and_raw_needs_rescore(tmp_path: Path) -> None:
    docs = scored_stream(30)
    scored = _jsonl(tmp_path / "scored.jsonl", [d.to_json().decode() for d in docs])
    raw = _jsonl(tmp_path / "raw.jsonl", [d.document.to_json().decode() for d in docs])
    with open_store(ClickHouseSettings(chdb_path=tmp_path / "chdb")) as store:
        migrate(store)
        settings = settings_for(store, replay={"publish": False})
        result = Replayer(settings, store, ReplayPlan("f-1", "file", T0, END, paths=(scored,)),
                          progress=False).run()
        assert result.stored == 30
        rows = store.query("SELECT doc_id, source, sentiment, model_name FROM scored_documents "
                           "FINAL WHERE run_id = 'f-1'")
        assert {r["doc_id"]: (r["source"], r["sentiment"]) for r in rows} == {
            d.document.id: (d.document.source, d.sentiment) for d in docs}
        with pytest.raises(ReplayError, match="no scores to copy: replay it with --rescore"):
            Replayer(settings, store, ReplayPlan("f-2", "file", T0, END, paths=(raw,)),
                     progress=False).run()
