"""Loaders for ../shared/data that follow MANIFEST.md's evaluation protocol exactly.

Every split is defined once, here, so training, evaluation and the benchmark agree on which
sentences are test sentences. The English sentiment training set excludes the test sentences of
BOTH FPB splits (AllAgree sentences also occur in 50Agree) and exact duplicates of any evaluation
text in the TFNS training file, so no reported figure is measured on training data.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from finsentry.errors import ModelError
from finsentry.models.base import SENTIMENT_LABELS

SEED = 42
TOPIC_LABELS: tuple[str, ...] = (
    "Analyst Update", "Fed/Central Banks", "Company/Product News", "Treasuries/Corporate Debt",
    "Dividend", "Earnings", "Energy/Oil", "Financials", "Currencies", "General News/Opinion",
    "Gold/Metals/Materials", "IPO", "Legal/Regulation", "M&A/Investments", "Macro", "Markets",
    "Politics", "Personnel Change", "Stock Commentary", "Stock Movement",
)
# TFNS: 0 bearish, 1 bullish, 2 neutral -> index into SENTIMENT_LABELS (negative, neutral, positive)
_TFNS_TO_SENTIMENT = {0: 0, 1: 2, 2: 1}
# FinFE: 0 negative, 1 neutral, 2 positive (already in SENTIMENT_LABELS order)
_FPB_FILES = {"fpb50": "Sentences_50Agree.txt", "fpb66": "Sentences_66Agree.txt",
              "fpb75": "Sentences_75Agree.txt", "fpball": "Sentences_AllAgree.txt"}
# FinNL: every text carries a geography label (中国/外国/国际) and one or more subject labels.
# The topic head predicts the FIRST subject label (302 of 7,071 training texts have two; the
# geography labels are not topics). MANIFEST lists these 13 subjects plus the 3 geographies.
ZH_TOPIC_LABELS: tuple[str, ...] = (
    "公司", "行业", "大盘", "经济", "政策", "政治", "期货", "债券", "房地产", "外汇", "虚拟货币",
    "新冠", "能源",
)
ZH_GEOGRAPHY = ("中国", "外国", "国际")
NSP_LABELS = ("non-negative", "negative")


@dataclass(frozen=True)
class Split:
    """Texts with integer labels indexing `labels`."""

    texts: list[str]
    targets: list[int]
    labels: tuple[str, ...]
    name: str

    def __len__(self) -> int:
        return len(self.texts)

    def without(self, texts: Iterable[str], name: str | None = None) -> Split:
        """This split minus every example whose normalised text is in `texts`."""
        drop = {_norm(t) for t in texts}
        keep = [i for i, t in enumerate(self.texts) if _norm(t) not in drop]
        return Split([self.texts[i] for i in keep], [self.targets[i] for i in keep],
                     self.labels, name or self.name)

    def __add__(self, other: Split) -> Split:
        if self.labels != other.labels:
            raise ModelError(f"cannot join {self.name} and {other.name}: different label sets")
        return Split(self.texts + other.texts, self.targets + other.targets, self.labels,
                     f"{self.name}+{other.name}")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _need(path: Path) -> Path:
    if not path.is_file():
        raise ModelError(f"data file not found: {path} (set the data root with --data)")
    return path


def _stratified(split: Split, test_size: float, name: str) -> tuple[Split, Split]:
    from sklearn.model_selection import train_test_split

    tr_x, te_x, tr_y, te_y = train_test_split(
        split.texts, split.targets, test_size=test_size, stratify=split.targets,
        random_state=SEED)
    return (Split(list(tr_x), list(tr_y), split.labels, f"{name}-train"),
            Split(list(te_x), list(te_y), split.labels, f"{name}-test"))


def read_fpb(root: Path, which: str) -> Split:
    """One FPB file in file order: latin-1, `sentence@label`, stray lines without '@' skipped."""
    path = _need(root / "financial_phrasebank" / _FPB_FILES[which])
    texts, targets = [], []
    for line in path.read_text(encoding="latin-1").splitlines():
        if "@" not in line:
            continue
        text, label = line.rsplit("@", 1)
        texts.append(text.strip())
        targets.append(SENTIMENT_LABELS.index(label.strip()))
    return Split(texts, targets, SENTIMENT_LABELS, which)


def fpb(root: Path, which: str = "fpb50") -> tuple[Split, Split]:
    """MANIFEST protocol: train_test_split(test_size=0.2, stratify, random_state=42)."""
    return _stratified(read_fpb(root, which), 0.2, which)


def tfns(root: Path) -> tuple[Split, Split]:
    """TFNS sent_train / sent_valid mapped onto (negative, neutral, positive)."""
    out = []
    for fname in ("sent_train.csv", "sent_valid.csv"):
        path = _need(root / "twitter_fin_news_sentiment" / fname)
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        out.append(Split([r["text"] for r in rows],
                         [_TFNS_TO_SENTIMENT[int(r["label"])] for r in rows],
                         SENTIMENT_LABELS, f"tfns-{fname.split('_')[1][:-4]}"))
    return out[0], out[1]


def topic(root: Path) -> tuple[Split, Split]:
    """Topic tweets: train.parquet / validation.parquet, 20 classes."""
    import pandas as pd

    out = []
    for fname in ("train.parquet", "validation.parquet"):
        frame = pd.read_parquet(_need(root / "twitter_fin_news_topic" / fname))
        out.append(Split(frame["text"].astype(str).tolist(), frame["label"].astype(int).tolist(),
                         TOPIC_LABELS, f"topic-{fname.split('.')[0]}"))
    return out[0], out[1]


def finfe(root: Path) -> tuple[Split, Split]:
    """FinFE with the one held-out slice: stratified test_size=0.1, random_state=42."""
    path = _need(root / "cn_bbt_fincuge_finfe" / "train_list.json")
    rows = json.loads(path.read_text(encoding="utf-8"))
    full = Split([str(r[0]) for r in rows], [int(r[1]) for r in rows], SENTIMENT_LABELS, "finfe")
    return _stratified(full, 0.1, "finfe")


def finnl(root: Path) -> tuple[Split, Split]:
    """FinNL train_list / eval_list, labelled with their first subject topic (see above);
    texts without a subject label (a handful of noisy rows) are left out."""
    out = []
    for fname in ("train_list.json", "eval_list.json"):
        rows = json.loads(_need(root / "cn_bbt_fincuge_finnl" / fname).read_text("utf-8"))
        texts, targets = [], []
        for text, labels in rows:
            subject = [lab for lab in str(labels).split() if lab in ZH_TOPIC_LABELS]
            if subject:
                texts.append(str(text))
                targets.append(ZH_TOPIC_LABELS.index(subject[0]))
        out.append(Split(texts, targets, ZH_TOPIC_LABELS, f"finnl-{fname.split('_')[0]}"))
    return out[0], out[1]


def finnsp(root: Path) -> Split:
    """FinNSP train_list: title + text, labelled negative (1) or not (0): extra signal for the
    Chinese sentiment head's P(negative). The eval_list is kept out of training."""
    rows = json.loads(_need(root / "cn_bbt_fincuge_finnsp" / "train_list.json")
                      .read_text("utf-8"))
    texts, targets = [], []
    for row in rows:
        flag = str(row[4]).strip()
        title, body = str(row[1] or "").strip(), str(row[2] or "").strip()
        text = body if title and body.startswith(title) else f"{title} {body}".strip()
        if flag in ("0", "1") and text:
            texts.append(text[:600])  # long posts: the model reads the first ~128 tokens
            targets.append(int(flag))
    return Split(texts, targets, NSP_LABELS, "finnsp-train")


def en_distill_texts(root: Path) -> list[str]:
    """Texts the teacher scores: the English sentiment training texts, the topic and TFNS
    training tweets and FPB sentences of every agreement level, minus every evaluation text
    (FPB-50/FPB-All test, TFNS valid, topic validation); de-duplicated, stable order."""
    texts = en_sentiment_train(root).texts + topic(root)[0].texts + tfns(root)[0].texts
    for which in _FPB_FILES:
        if (root / "financial_phrasebank" / _FPB_FILES[which]).is_file():
            texts += read_fpb(root, which).texts
    held = (fpb(root, "fpb50")[1].texts + fpb(root, "fpball")[1].texts + tfns(root)[1].texts
            + topic(root)[1].texts)
    return _dedup(texts, held)


def _dedup(texts: list[str], held: list[str]) -> list[str]:
    drop = {_norm(t) for t in held}
    seen: set[str] = set()
    out = []
    for text in texts:
        key = _norm(text)
        if key and key not in drop and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def en_sentiment_train(root: Path) -> Split:
    """FPB-50 train + TFNS train, minus every FPB-50/FPB-All test sentence and TFNS valid text."""
    fpb50_train, fpb50_test = fpb(root, "fpb50")
    _, fpball_test = fpb(root, "fpball")
    tfns_train, tfns_valid = tfns(root)
    held = fpb50_test.texts + fpball_test.texts + tfns_valid.texts
    return fpb50_train.without(held, "fpb50-train") + tfns_train.without(held, "tfns-train")


def training_set(root: Path, task: str, lang: str) -> Split:
    """The training data for a (task, lang) pair; never contains an evaluation sentence."""
    if (task, lang) == ("sentiment", "en"):
        return en_sentiment_train(root)
    if (task, lang) == ("topic", "en"):
        return topic(root)[0]
    if (task, lang) == ("sentiment", "zh"):
        return finfe(root)[0]
    if (task, lang) == ("topic", "zh"):
        return finnl(root)[0]
    raise ModelError(f"no training data for task={task!r} lang={lang!r}")


def unlabelled_texts(root: Path, lang: str) -> list[str]:
    """Texts for distillation (labels unused): the TFNS and topic tweets, or FinNL/FinNSP news."""
    if lang == "en":
        texts = tfns(root)[0].texts + topic(root)[0].texts
        held = fpb(root, "fpb50")[1].texts + fpb(root, "fpball")[1].texts + tfns(root)[1].texts
        held += topic(root)[1].texts
    else:
        texts = []
        for sub in ("cn_bbt_fincuge_finnl", "cn_bbt_fincuge_finnsp"):
            path = root / sub / "train_list.json"
            if path.is_file():
                for row in json.loads(path.read_text(encoding="utf-8")):
                    texts.append(str(row[1] if sub.endswith("finnsp") else row[0]))
        held = finfe(root)[1].texts
    return _dedup(texts, held)


# Evaluation sets by name, as MANIFEST.md defines them: name -> (loader, task)
EVAL_SETS: dict[str, tuple[Callable[[Path], Split], str]] = {
    "fpb50": (lambda r: fpb(r, "fpb50")[1], "sentiment"),
    "fpball": (lambda r: fpb(r, "fpball")[1], "sentiment"),
    "tfns": (lambda r: tfns(r)[1], "sentiment"),
    "topic": (lambda r: topic(r)[1], "topic"),
    "finfe": (lambda r: finfe(r)[1], "sentiment"),
    "finnl": (lambda r: finnl(r)[1], "topic"),
}
DEFAULT_EVAL = {("sentiment", "en"): ("fpb50", "fpball", "tfns"), ("topic", "en"): ("topic",),
                ("sentiment", "zh"): ("finfe",), ("topic", "zh"): ("finnl",)}
