"""Fixtures for the model tests: a tiny data root in MANIFEST formats, shared classifiers.

The tiny data root mimics ../shared/data's file formats (latin-1 FPB with a stray line, TFNS csv,
topic parquet, FinFE json) so the protocol code runs without the real data being present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsentry.config import ModelSettings
from finsentry.models.base import Classifier

POS = ["Company {i} said profit rose {i}% in the quarter .", "Net sales of unit {i} increased "
       "strongly and margins improved ."]
NEG = ["Company {i} filed for bankruptcy after losses .", "Operating loss of unit {i} widened "
       "and the company cut {i} jobs ."]
NEU = ["Company {i} will hold its annual general meeting on day {i} .", "The unit {i} is "
       "located in Espoo , Finland ."]


def sentences(n: int) -> list[tuple[str, str]]:
    """n labelled sentences cycling negative/neutral/positive (a few with latin-1 letters)."""
    out = []
    for i in range(n):
        label = ("negative", "neutral", "positive")[i % 3]
        tmpl = {"negative": NEG, "neutral": NEU, "positive": POS}[label][(i // 3) % 2]
        text = tmpl.format(i=i)
        if i % 7 == 0:
            text = text.replace("Company", "Société")
        out.append((text, label))
    return out


def write_data_root(root: Path) -> Path:
    import pandas as pd

    fpb = root / "financial_phrasebank"
    fpb.mkdir(parents=True)
    rows = sentences(60)
    lines = [f"{t}@{lab}" for t, lab in rows]
    (fpb / "Sentences_50Agree.txt").write_bytes("\n".join(lines).encode("latin-1"))
    all_agree = lines[:30]
    all_agree.insert(5, "1")  # the stray line the real file has
    (fpb / "Sentences_AllAgree.txt").write_bytes("\n".join(all_agree).encode("latin-1"))
    tfns = root / "twitter_fin_news_sentiment"
    tfns.mkdir()
    code = {"negative": 0, "positive": 1, "neutral": 2}
    for name, part in (("sent_train.csv", sentences(45)[::-1]), ("sent_valid.csv", sentences(15))):
        texts = [f"$TCK {t}" for t, _ in part]
        labels = [code[lab] for _, lab in part]
        if name == "sent_train.csv":  # exact copies of every FPB sentence: test ones must go
            texts += [t for t, _ in rows]
            labels += [code[lab] for _, lab in rows]
        pd.DataFrame({"text": texts, "label": labels}).to_csv(tfns / name, index=False)
    topic = root / "twitter_fin_news_topic"
    topic.mkdir()
    for name, k in (("train.parquet", 3), ("validation.parquet", 1)):
        pd.DataFrame({"text": [f"topic {c} news item {j}" for c in range(20) for j in range(k)],
                      "label": [c for c in range(20) for _ in range(k)]}).to_parquet(topic / name)
    finfe = root / "cn_bbt_fincuge_finfe"
    finfe.mkdir()
    zh = [["亏损严重，股价暴跌", 0], ["今天收盘持平", 1], ["业绩大增，涨停了", 2]] * 10
    (finfe / "train_list.json").write_text(json.dumps(zh, ensure_ascii=False), encoding="utf-8")
    finnl = root / "cn_bbt_fincuge_finnl"
    finnl.mkdir()
    finnl_rows = {"train_list.json": [["央行下调存款准备金率", "中国 政策"],
                                ["苹果公司发布新品", "外国 公司"],
                                ["油价大涨", "国际 能源 经济"], ["噪声", "中国"]],
            "eval_list.json": [["美联储加息", "外国 政策"], ["某公司上市", "中国 公司"]]}
    for name, zh_part in finnl_rows.items():
        (finnl / name).write_text(json.dumps(zh_part, ensure_ascii=False), encoding="utf-8")
    finnsp = root / "cn_bbt_fincuge_finnsp"
    finnsp.mkdir()
    nsp = [["a1", "标题", "标题 某平台涉嫌诈骗", "某平台", "1", "某平台"],
           ["a2", "", "公司业绩稳定", "公司", "0", ""], ["a3", "x", "y", "z", "negative", ""]]
    (finnsp / "train_list.json").write_text(json.dumps(nsp, ensure_ascii=False),
                                            encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data_root(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def derived_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("derived")


@pytest.fixture(scope="session")
def default_classifier(derived_cache: Path) -> Classifier:
    """The registered default classifier on the shipped checkpoints (ONNX int8 on CPU)."""
    from finsentry.models import load_classifier

    return load_classifier(ModelSettings(derived_cache=derived_cache))


@pytest.fixture(scope="session")
def torch_classifier(derived_cache: Path) -> Classifier:
    """The same checkpoints on the plain fp32 torch backend."""
    from finsentry.models import load_classifier

    return load_classifier(ModelSettings(derived_cache=derived_cache, backend="torch",
                                         quantize=False))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's WordPiece tokenizer:
    a real model folder built at test time, small enough to train in seconds."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    from finsentry.models.bases import resolve_base

    out = tmp_path_factory.mktemp("tiny-base")
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(out)
    src = resolve_base("minilm-l6")
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / f).is_file():
            shutil.copy(src / f, out / f)
    return out
