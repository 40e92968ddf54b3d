"""The distillation chain on a tiny slice, stage by stage, each stage killed once and resumed:
teacher fine-tune -> teacher soft labels (int8 ONNX, keyed by text hash) -> multi-task student
on soft + gold labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from finsentry.models.soft_labels import SoftLabels, score, text_key
from finsentry.models.train import train
from finsentry.models.train_mt import train_mt
from tests.models.test_multitask import mt_config, tiny_tasks
from tests.models.test_train import tiny_config

UNLABELLED = ["Shares jumped after the results", "The bank cut 300 jobs",
              "Oil prices rose sharply", "Markets were flat on Monday"]


@pytest.fixture(scope="module")
def teacher(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chain") / "teacher"
    assert train(tiny_config(out, base=str(tiny_base), stop_after=2)) == {"stopped_at_step": 2}
    train(tiny_config(out, base=str(tiny_base)))  # stage 1 resumed after a kill
    return out


def test_chain_end_to_end_with_every_stage_resumed(teacher: Path, tiny_base: Path,
                                                   tmp_path: Path, derived_cache: Path) -> None:
    texts = tiny_tasks()["sentiment"].texts + UNLABELLED
    soft = tmp_path / "soft.npz"
    # stage 2, killed after one chunk of 8 texts, then resumed
    first = score(teacher, texts, soft, chunk=8, stop_after=1, cache_dir=derived_cache)
    assert first["stopped_at_chunk"] == 1 and not soft.exists()
    parts = sorted((tmp_path / "soft.npz.parts").glob("part-*.npz"))
    assert len(parts) == 1
    stamp = parts[0].stat().st_mtime_ns
    meta = score(teacher, texts, soft, chunk=8, cache_dir=derived_cache, command="pytest")
    assert parts[0].stat().st_mtime_ns == stamp  # the scored chunk was not redone
    assert meta["texts"] == len(set(texts)) and meta["backend"] == "onnx"
    assert json.loads(soft.with_suffix(".json").read_text())["command"] == "pytest"
    labels = SoftLabels.load(soft)
    got = labels.lookup(UNLABELLED + ["never scored"])
    assert not np.isnan(got[:4]).any() and np.isnan(got[4]).all()
    assert labels.keys.dtype == np.uint64 and labels.logits.dtype == np.float16
    assert text_key("The bank  cut 300 JOBS") == text_key("the bank cut 300 jobs")
    # stage 3: the student learns from soft + gold labels; killed, then resumed
    out = tmp_path / "student"
    cfg = dict(soft_labels=soft, extra_texts=UNLABELLED)
    assert train_mt(mt_config(tiny_base, out, stop_after=3, **cfg)) == {"stopped_at_step": 3}
    metrics = train_mt(mt_config(tiny_base, out, **cfg))
    assert metrics["teacher_scored"] == len(set(texts)) - 4  # dev texts are not trained on
    assert metrics["texts"] == len(texts) - 4 + len(tiny_tasks()["topic"]) - 3
    assert "distilled from the teacher" in (out / "README.md").read_text()


def test_soft_labels_cli_scores_the_distillation_texts(teacher: Path, data_root: Path,
                                                       tmp_path: Path, derived_cache: Path
                                                       ) -> None:
    from finsentry.cli import cli
    from finsentry.models import data as D

    out = tmp_path / "en-teacher-soft.npz"
    res = CliRunner().invoke(cli, ["models", "soft-labels", "--teacher", str(teacher), "--out",
                                   str(out), "--data", str(data_root), "--chunk", "64"],
                             catch_exceptions=False,
                             env={"FINSENTRY_MODELS__DERIVED_CACHE": str(derived_cache)})
    assert res.exit_code == 0, res.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"].startswith("finsentry models soft-labels --teacher")
    texts = D.en_distill_texts(data_root)
    assert meta["texts"] == len(texts)
    held = D.fpb(data_root, "fpb50")[1].texts + D.tfns(data_root)[1].texts
    assert not np.isin([text_key(t) for t in held], SoftLabels.load(out).keys).any()
