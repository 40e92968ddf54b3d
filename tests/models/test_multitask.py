"""Multi-task checkpoints: joint training, the no-finsentry layout, one pass for both heads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finsentry.config import ModelSettings
from finsentry.models.base import SENTIMENT_LABELS
from finsentry.models.classifier import DefaultClassifier
from finsentry.models.data import Split
from finsentry.models.multitask import LOADER, MultiTaskModel, read_spec
from finsentry.models.train_mt import MTConfig, train_mt
from tests.models.conftest import sentences

TOPICS = ("Earnings", "Fed/Central Banks", "Energy/Oil")
TOPIC_TEXTS = {0: "Company {i} quarterly earnings per share beat estimates",
               1: "The Fed raised interest rates by {i} basis points",
               2: "Oil prices rose as OPEC cut crude output by {i} barrels"}


def tiny_tasks() -> dict[str, Split]:
    rows = sentences(36)
    sent = Split([t for t, _ in rows], [SENTIMENT_LABELS.index(lab) for _, lab in rows],
                 SENTIMENT_LABELS, "tiny-sentiment")
    topic = Split([TOPIC_TEXTS[i % 3].format(i=i) for i in range(30)], [i % 3 for i in range(30)],
                  TOPICS, "tiny-topic")
    return {"sentiment": sent, "topic": topic}


def mt_config(base: Path, out: Path, **kw: object) -> MTConfig:
    args: dict[str, object] = dict(lang="en", base=str(base), out=out, epochs=4, batch_size=8,
                                   max_length=32, lr=2e-3, head_lr=1e-2, evaluate=False,
                                   tasks=tiny_tasks(), command="pytest", checkpoint_every=2,
                                   eval_every=4, freeze_embeddings=False)
    args.update(kw)
    return MTConfig(**args)


@pytest.fixture(scope="module")
def mt_model(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mt") / "en-multitask"
    return out, train_mt(mt_config(tiny_base, out))


def test_layout_is_a_standard_encoder_plus_heads(mt_model: tuple[Path, dict],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out, metrics = mt_model
    spec = read_spec(out)
    assert spec["pooling"] == "mean" and list(spec["heads"]) == ["sentiment", "topic"]
    assert spec["heads"]["topic"]["labels"] == list(TOPICS)
    assert all(h["temperature"] > 0 for h in spec["heads"].values())
    assert set(metrics["calibration"]) == {"sentiment", "topic"}
    card = (out / "README.md").read_text()
    assert "heads.safetensors" in card and "safe_open" in card and "pytest" in card
    # The card's loader runs offline with transformers + safetensors only, and agrees with
    # the engine's fp32 path.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = LOADER.strip("`\n").removeprefix("python\n").replace("path/to/this/folder", str(out))
    printed: list[tuple] = []
    exec(code, {"print": lambda *a: printed.append(a)})  # noqa: S102 (our own snippet)
    engine = MultiTaskModel(out, backend="torch")
    probs = engine.head_probs(["Profit rose 40%"])
    for name, dist in printed:
        np.testing.assert_allclose(list(dist.values()), probs[name][0], atol=2e-3)


def test_one_forward_pass_yields_both_heads(mt_model: tuple[Path, dict], derived_cache: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = mt_model
    for backend in ("torch", "onnx"):
        m = MultiTaskModel(out, backend=backend, cache_dir=derived_cache)
        calls: list[int] = []

        def counted(t: list[str], lane: int = 0, real: object = m._logits,
                    calls: list[int] = calls) -> object:
            calls.append(len(t))
            return real(t, lane)  # type: ignore[operator]

        monkeypatch.setattr(m, "_logits", counted)
        probs = m.head_probs(["profit rose 40%", "the Fed raised rates"])
        # one pass per text, both heads out of it: the batch whole, or one slice per lane
        assert sorted(calls) == ([2] if m.lanes == 1 else [1, 1])
        assert probs["sentiment"].shape == (2, 3) and probs["topic"].shape == (2, 3)
        np.testing.assert_allclose(probs["topic"].sum(-1), 1.0, atol=1e-5)
    sess = m._session
    assert [o.name for o in sess.get_outputs()] == ["sentiment", "topic"]


def test_trained_heads_learn_the_tiny_task(mt_model: tuple[Path, dict]) -> None:
    out, _ = mt_model
    m = MultiTaskModel(out, backend="torch")
    probs = m.head_probs([TOPIC_TEXTS[k].format(i=99) for k in range(3)])
    assert probs["topic"].argmax(-1).tolist() == [0, 1, 2]


def test_default_classifier_uses_one_pass_and_keeps_order(mt_model: tuple[Path, dict],
                                                          derived_cache: Path) -> None:
    out, _ = mt_model
    clf = DefaultClassifier(ModelSettings(en_multitask_path=out, backend="torch",
                                          quantize=False, derived_cache=derived_cache))
    assert clf.topic is None and clf.en_multitask is not None
    texts = [TOPIC_TEXTS[k].format(i=k) for k in range(3)] + ["", "Company 3 filed for "
                                                             "bankruptcy after losses ."]
    batch = clf.predict_batch(texts)
    single = [clf.predict_batch([t])[0] for t in texts]
    reverse = clf.predict_batch(texts[::-1])[::-1]
    for a, b, c in zip(batch, single, reverse, strict=True):
        assert a.topic == b.topic == c.topic and a.sentiment == b.sentiment == c.sentiment
        np.testing.assert_allclose(list(a.sentiment_probs.values()),
                                   list(b.sentiment_probs.values()), atol=1e-4)
    assert [p.topic for p in batch[:3]] == list(TOPICS)
    assert batch[1].extra["theme"] == "central_banks_policy"
    assert batch[3].topic == "" and "skipped" in batch[3].extra


def test_resume_after_a_killed_stage(tiny_base: Path, mt_model: tuple[Path, dict],
                                     tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train_mt(mt_config(tiny_base, out, stop_after=3)) == {"stopped_at_step": 3}
    metrics = train_mt(mt_config(tiny_base, out))
    _, whole = mt_model
    assert [h["step"] for h in metrics["history"]] == [h["step"] for h in whole["history"]]
    assert json.loads((out / "training.json").read_text())["metrics"]["best_step"] > 0


def test_a_multitask_base_continues_from_its_heads(mt_model: tuple[Path, dict]) -> None:
    """`--base <multi-task folder>` starts a new stage from that checkpoint's encoder AND heads
    (how the shipped en-multitask's second stage was trained), not from fresh heads."""
    import torch
    from safetensors.torch import load_file

    from finsentry.models.train_mt import _build_net

    path, _ = mt_model
    labels = {h: s.labels for h, s in tiny_tasks().items()}
    net = _build_net(mt_config(path, path / "unused"), path, labels)
    saved = load_file(str(path / "heads.safetensors"))
    for name, tensor in net.heads.state_dict().items():
        assert torch.allclose(tensor, saved[name].float())


def test_taxonomy_links_topics_across_languages() -> None:
    from finsentry.models.data import TOPIC_LABELS, ZH_TOPIC_LABELS
    from finsentry.models.taxonomy import THEMES, theme, topics_for

    assert theme("en", "Fed/Central Banks") == theme("zh", "政策") == "central_banks_policy"
    assert theme("en", "Energy/Oil") == theme("zh", "能源") == "energy"
    assert theme("zh", "") == "" and theme("en", "no such topic") == ""
    assert topics_for("energy") == {"en": ("Energy/Oil",), "zh": ("能源",)}
    en = [t for en_t, _ in THEMES.values() for t in en_t]
    zh = [t for _, zh_t in THEMES.values() for t in zh_t]
    assert sorted(en) == sorted(TOPIC_LABELS) and sorted(zh) == sorted(ZH_TOPIC_LABELS)


def test_cli_train_mt_then_eval_every_head(tiny_base: Path, data_root: Path,
                                           tmp_path: Path) -> None:
    from click.testing import CliRunner

    from finsentry.cli import cli

    out = tmp_path / "en-mt"
    runner = CliRunner()
    res = runner.invoke(cli, ["models", "train-mt", "--base", str(tiny_base), "--out", str(out),
                              "--epochs", "1", "--batch-size", "16", "--max-length", "32",
                              "--data", str(data_root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    card = (out / "README.md").read_text()
    assert "finsentry models train-mt --base" in card and "### topic head" in card
    assert "| fpb50 |" in card and "[" in card.split("| fpb50 |")[1].split("\n")[0]  # CI
    res = runner.invoke(cli, ["models", "eval", "--model", str(out), "--data", str(data_root),
                              "--out", str(tmp_path / "rep")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "rep.json").read_text())
    assert set(report) == {"fpb50", "fpball", "tfns", "topic"}
    assert all("accuracy_ci" in r and "ece" in r for r in report.values())
