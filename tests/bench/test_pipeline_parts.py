"""How the pipeline benchmark folds several bursts into one row (bench/_pipeline_parts.py)."""

from __future__ import annotations

import pytest
from _pipeline_parts import Burst, RunResult, combine, tables


def _burst(wall: float, classify: float, predict: float) -> Burst:
    return Burst(docs=100, wall=wall, cpu={"workers": 0.4 * wall, "broker": 0.1},
                 threads={"MainThread": 0.05}, classify_s=classify, predict_s=predict,
                 inserts=2, rows=100)


def test_the_row_is_the_median_burst_against_its_own_bare_passes() -> None:
    # bare passes at 100 docs/s around the first burst, 50 around the last (load drifted)
    bares = [(100.0, 4.0), (100.0, 4.0), (80.0, 4.0), (50.0, 4.0)]
    bursts = [_burst(1.25, 1.1, 1.0), _burst(2.0, 1.9, 1.7), _burst(2.5, 2.3, 2.2)]
    result = RunResult("chdb", 1)
    mid = combine(result, bursts, bares)
    # ratios: 80/100, 50/90, 40/65 -> median 0.62 is the last burst's
    assert result.ratios == pytest.approx([0.8, 50 / 90, 40 / 65])
    assert mid == 2 and result.docs_per_s == pytest.approx(40.0)
    assert result.bare == (65.0, 4.0)
    # CPU columns are totals over every burst, per 1000 documents
    assert result.cpu["broker"] == pytest.approx(0.3 * 1000 / 300)
    assert result.threads["MainThread"] == pytest.approx(0.15 * 1000 / 300)
    assert result.rows_per_insert == 50
    assert result.classifier_busy == pytest.approx(5.3 / 5.75)
    split = result.split
    assert split["model"] == pytest.approx(4.9) and split["records"] == pytest.approx(0.4)
    assert split["model"] + split["records"] + split["waiting"] == pytest.approx(split["wall"])
    assert split["bare"] == pytest.approx(1.0 + 100 / 90 + 100 / 65)
    thr, _, _, where = tables([result], {"default": (90.0, 4.0)}, "model", 2)
    assert thr.rows[-1][6] == "0.56 0.62 0.80"  # every burst, lowest first
    assert where.rows[0][0] == "chdb" and where.rows[0][-1] == pytest.approx(
        split["bare"] / split["wall"])


def test_two_workers_have_no_single_classify_thread_to_split() -> None:
    result = RunResult("server", 2)
    combine(result, [_burst(1.0, 1.6, 1.5)], [(100.0, 4.0), (100.0, 4.0)])
    assert result.split == {} and result.classifier_busy == pytest.approx(0.8)
    assert tables([result], {}, "model", 2)[3].rows == []
