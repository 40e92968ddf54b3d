"""Training end to end on a tiny in-test slice, from the real MiniLM base (no ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors import safe_open

from finsentry.config import ModelSettings
from finsentry.models.base import SENTIMENT_LABELS
from finsentry.models.classifier import DefaultClassifier
from finsentry.models.data import Split
from finsentry.models.engine import TextModel
from finsentry.models.train import TrainConfig, export_best, train
from tests.models.conftest import sentences


def tiny_split() -> Split:
    rows = sentences(48)
    return Split([t for t, _ in rows], [SENTIMENT_LABELS.index(lab) for _, lab in rows],
                 SENTIMENT_LABELS, "tiny")


def tiny_config(out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(task="sentiment", lang="en", base="minilm-l6", out=out,
                                   epochs=1, batch_size=8, max_length=32, evaluate=False,
                                   train_data=tiny_split(), command="pytest", checkpoint_every=2)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tiny") / "model"
    return out, train(tiny_config(out))


def test_training_writes_a_standard_fp16_folder_with_a_card(trained: tuple[Path, dict],
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from transformers import AutoModelForSequenceClassification

    out, metrics = trained
    assert metrics["train_examples"] + metrics["dev_examples"] == 48
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}
    card = (out / "README.md").read_text()
    for needle in ("minilm-l6", "pytest", "seed 42", "NON-COMMERCIAL", "CC BY-NC-SA"):
        assert needle in card
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 3
    assert TextModel(out, backend="torch").probs(["profit rose"]).shape == (1, 3)
    clf = DefaultClassifier(ModelSettings(sentiment_path=out, topic_path=out, backend="torch"))
    (pred,) = clf.predict_batch(["profit rose"])
    assert pred.sentiment in SENTIMENT_LABELS and pred.model_name.startswith("default/model")


def test_resume_continues_a_killed_run(trained: tuple[Path, dict], tmp_path: Path) -> None:
    out = tmp_path / "run"
    stopped = train(tiny_config(out, stop_after=3))  # as if the session were killed at step 3
    assert stopped == {"stopped_at_step": 3} and not (out / "model.safetensors").exists()
    metrics = train(tiny_config(out))  # same command again: resumes from <out>/_state
    _, uninterrupted = trained
    assert [h["step"] for h in metrics["history"]] == [h["step"] for h in
                                                       uninterrupted["history"]]
    for a, b in zip(metrics["history"], uninterrupted["history"], strict=True):
        assert a["dev_accuracy"] == pytest.approx(b["dev_accuracy"], abs=0.05)
    assert (out / "model.safetensors").is_file()


def test_continued_training_records_its_lineage(trained: tuple[Path, dict],
                                                tmp_path: Path) -> None:
    first, _ = trained
    out = tmp_path / "continued"
    train(tiny_config(out, base=str(first), command="pytest again"))
    lineage = json.loads((out / "training.json").read_text())["lineage"]
    assert [run["command"] for run in lineage] == ["pytest"]
    assert lineage[0]["base"] == "minilm-l6"
    card = (out / "README.md").read_text()
    assert "`minilm-l6` (full fine-tune), trained in\n2 runs" in card
    assert "pytest again" in card and "1. `pytest`" in card


def test_lora_adapters_are_merged_before_saving(tmp_path: Path) -> None:
    out = tmp_path / "lora"
    train(tiny_config(out, lora=True))
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not [k for k in keys if "lora" in k or "base_model" in k]
    assert TextModel(out, backend="torch").labels == SENTIMENT_LABELS


def test_distillation_from_a_teacher_uses_unlabelled_texts(trained: tuple[Path, dict],
                                                           tmp_path: Path) -> None:
    teacher, _ = trained
    out = tmp_path / "student"
    metrics = train(tiny_config(out, distill_from=teacher,
                                unlabelled=["shares jumped after results", "bank cut jobs"]))
    assert metrics["unlabelled_examples"] == 2
    assert (out / "_state" / "teacher_probs.npy").is_file()
    assert "distilled from teacher" in (out / "README.md").read_text()


def test_export_best_of_an_unfinished_run(trained: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = trained
    export_best(tiny_config(out), tmp_path / "snap")
    assert TextModel(tmp_path / "snap", backend="torch").labels == SENTIMENT_LABELS


def test_cli_train_then_eval_on_the_manifest_protocol(data_root: Path, tmp_path: Path) -> None:
    from finsentry.cli import cli

    out = tmp_path / "topic"
    runner = CliRunner()
    res = runner.invoke(cli, ["models", "train", "--task", "topic", "--base", "minilm-l6",
                              "--out", str(out), "--epochs", "1", "--batch-size", "16",
                              "--data", str(data_root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    card = (out / "README.md").read_text()
    assert "finsentry models train --task topic" in card and "| topic | 20 |" in card
    res = runner.invoke(cli, ["models", "eval", "--model", str(out), "--data", str(data_root),
                              "--out", str(tmp_path / "rep")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "rep.json").read_text())
    assert set(report["topic"]) >= {"accuracy", "macro_f1", "weighted_f1", "per_class",
                                    "confusion"}
    assert len(report["topic"]["confusion"]) == 20
    assert "Confusion matrix" in (tmp_path / "rep.md").read_text()
