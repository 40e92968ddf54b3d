"""The MANIFEST protocol on a tiny data root in the real file formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from finsentry.errors import ModelError
from finsentry.models import data as D
from finsentry.models.base import SENTIMENT_LABELS


def test_fpb_reads_latin1_skips_stray_line_and_splits_like_manifest(data_root: Path) -> None:
    from sklearn.model_selection import train_test_split

    full = D.read_fpb(data_root, "fpball")
    assert len(full) == 30 and "1" not in full.texts
    assert any("Société" in t for t in full.texts)
    train, test = D.fpb(data_root, "fpball")
    _, expected, _, _ = train_test_split(full.texts, full.targets, test_size=0.2,
                                         stratify=full.targets, random_state=42)
    assert test.texts == list(expected) and len(train) + len(test) == 30


def test_english_training_set_never_contains_a_test_sentence(data_root: Path) -> None:
    train = D.en_sentiment_train(data_root)
    held = (D.fpb(data_root, "fpb50")[1].texts + D.fpb(data_root, "fpball")[1].texts
            + D.tfns(data_root)[1].texts)
    assert held and not set(train.texts) & set(held)
    # FPB-All test sentences also occur in 50Agree's train split; they are dropped from training
    fpball_test = set(D.fpb(data_root, "fpball")[1].texts)
    assert fpball_test & set(D.fpb(data_root, "fpb50")[0].texts)
    assert not fpball_test & set(train.texts)


def test_tfns_label_mapping(data_root: Path) -> None:
    train, _ = D.tfns(data_root)
    by_text = dict(zip(train.texts, train.targets, strict=True))
    assert SENTIMENT_LABELS[by_text["$TCK Company 1 will hold its annual general meeting on "
                                    "day 1 ."]] == "neutral"
    assert train.labels == SENTIMENT_LABELS
    assert {SENTIMENT_LABELS[y] for t, y in by_text.items() if "bankruptcy" in t} == {"negative"}
    assert {SENTIMENT_LABELS[y] for t, y in by_text.items() if "profit rose" in t} == {"positive"}


def test_topic_and_finfe_splits(data_root: Path) -> None:
    train, valid = D.topic(data_root)
    assert train.labels == D.TOPIC_LABELS and len(D.TOPIC_LABELS) == 20
    assert len(train) == 60 and len(valid) == 20
    fe_train, fe_test = D.finfe(data_root)
    assert len(fe_test) == 3 and not set(map(id, fe_test.texts)) & set(map(id, fe_train.texts))
    assert sorted(fe_test.targets) == [0, 1, 2]


def test_unlabelled_texts_exclude_evaluation_texts(data_root: Path) -> None:
    texts = D.unlabelled_texts(data_root, "en")
    assert texts and not set(texts) & set(D.topic(data_root)[1].texts)
    assert len(texts) == len(set(texts))


def test_missing_data_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="Sentences_50Agree.txt"):
        D.fpb(tmp_path, "fpb50")
    with pytest.raises(ModelError, match="no training data"):
        D.training_set(tmp_path, "ner", "zh")


def test_finnl_uses_the_first_subject_label_and_finnsp_the_negative_flag(data_root: Path
                                                                        ) -> None:
    train, test = D.finnl(data_root)
    assert train.labels == D.ZH_TOPIC_LABELS and len(test) == 2
    assert [train.labels[y] for y in train.targets] == ["政策", "公司", "能源"]  # geography skipped
    nsp = D.finnsp(data_root)
    assert nsp.targets == [1, 0] and nsp.texts[0].startswith("标题")
    assert D.training_set(data_root, "topic", "zh").name == "finnl-train"
