"""The backtest report: self-contained HTML that headless Chromium renders with charts, alert
markers, event spans and the summary, without console errors; the JSON has the same numbers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from finsentry.config import ClickHouseSettings
from finsentry.replay.backtest import BacktestResult, run_backtest
from finsentry.replay.evaluator import engine_evaluator
from finsentry.replay.labels import read_labels
from finsentry.replay.report import write_report
from finsentry.store import ScoredSink, Store, migrate, open_store
from tests.replay.browser import colour_stats, render
from tests.replay.helpers import T0, scored_stream

HERE = Path(__file__).parent
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def chdb_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(ClickHouseSettings(chdb_path=tmp_path / "chdb")) as store:
        migrate(store)
        yield store


def _backtest(store: Store, tmp_path: Path) -> BacktestResult:
    ScoredSink(store).write(scored_stream(400, minutes=120))
    labels = tmp_path / "labels.csv"
    labels.write_text("key,start,end,rule,label\n"
                      f"BAC,{T0 + timedelta(minutes=60)},{T0 + timedelta(minutes=120)},,"
                      f"\"{HOSTILE} loss\"\n"
                      f"AAPL,{T0 + timedelta(minutes=30)},{T0 + timedelta(minutes=40)},,missed\n",
                      encoding="utf-8")
    return run_backtest(store, engine_evaluator(), [HERE / "rules_neg.toml"], "live", T0,
                        T0 + timedelta(minutes=120), events=read_labels(labels),
                        compare_rules=[HERE / "rules_strict.toml"])


def test_report_renders_in_headless_chromium(chdb_store: Store, tmp_path: Path) -> None:
    result = _backtest(chdb_store, tmp_path)
    html_path, json_path = write_report(result, tmp_path / "out" / "backtest.html")
    html = html_path.read_text(encoding="utf-8")
    # self-contained: no external assets, no scripts; untrusted text escaped
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "&lt;script&gt;" in html

    page = render(html_path, tmp_path)
    assert page.console == []
    dom = page.dom
    charts = re.findall(r'<svg class="metric-chart"', dom)
    assert len(charts) >= 3  # BAC for both rules, AAPL (labelled) for both
    assert dom.count('class="alert"') == sum(len(o.alerts) for s in result.sides
                                             for o in s.outcomes)
    assert dom.count('class="event"') >= 2 and 'class="series"' in dom
    summary = dom[dom.index('id="summary"'):dom.index("</table>")]
    assert "A: rules_neg.toml" in summary and "B: rules_strict.toml" in summary
    colours, ink = colour_stats(page.screenshot)
    assert colours > 20 and ink > 0.02  # not blank: lines, markers, spans, text

    data = json.loads(json_path.read_text(encoding="utf-8"))
    a, b = data["sides"]
    assert a["rules"][0]["rule"] == "neg-spike" and b["rules"][0]["rule"] == "neg-spike-strict"
    for side, js in zip(result.sides, (a, b), strict=True):
        o = side.outcomes[0]
        assert o.score is not None
        assert js["rules"][0]["alerts"] == len(o.alerts)
        assert js["rules"][0]["score"]["recall"] == o.score.recall
        assert o.score.per_event[0].detected_at is not None  # the BAC burst is found
        assert js["rules"][0]["score"]["precision"] == o.score.precision
        assert f">{o.score.recall:.0%}<" in summary
