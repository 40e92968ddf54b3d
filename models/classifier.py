"""The "default" classifier: English sentiment + topic, Chinese sentiment, bad inputs handled.

Routing: a text whose non-space characters are >= 20% CJK ideographs is Chinese. Chinese text goes
to the Chinese sentiment model (committed `zh-sentiment`, or `models.zh_sentiment_path`); until
one exists it falls back to the English model and logs a warning once. Topic: the shipped topic
model knows English financial tweets only, so Chinese text gets topic "" (no topic, empty
probabilities) rather than a guess; `Prediction.extra["topic_skipped"]` says why.

Bad inputs never fail the batch: None/non-text and empty or whitespace-only texts get a neutral
result (P(neutral)=1, score 0, topic "") with `extra["skipped"]`; bytes are decoded as UTF-8 with
replacement; lone surrogates and control characters are replaced; texts longer than
`_MAX_CHARS` are cut before tokenising (the model reads at most `max_length` tokens anyway).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finsentry.config import ModelSettings
from finsentry.errors import ModelError
from finsentry.models.base import SENTIMENT_LABELS, Classifier, Prediction
from finsentry.models.engine import TextModel
from finsentry.models.paths import shipped

log = logging.getLogger(__name__)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_CHARS = 4000  # ~ 10x what 128 tokens cover; keeps tokenising a huge text cheap
_NEUTRAL = {"negative": 0.0, "neutral": 1.0, "positive": 0.0}


def detect_language(text: str) -> str:
    """'zh' when at least 20% of the non-space characters are CJK ideographs, else 'en'."""
    chars = len(text) - text.count(" ")
    return "zh" if chars and len(_CJK.findall(text)) / chars >= 0.2 else "en"


def clean_text(raw: object) -> tuple[str, dict[str, object]]:
    """Normalise one input into text the tokenizer accepts; notes go into Prediction.extra."""
    notes: dict[str, object] = {}
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("utf-8", errors="replace")
        notes["decoded"] = "utf-8-replace"
    if not isinstance(raw, str):
        notes["skipped"] = f"not text ({type(raw).__name__})"
        return "", notes
    text = raw.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates -> '?'
    if text != raw:
        notes["repaired"] = "surrogates"
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > _MAX_CHARS:
        text = text[:_MAX_CHARS]
        notes["truncated_chars"] = len(raw)
    if not text:
        notes.setdefault("skipped", "empty")
    return text, notes


def _need(path: Path | None, what: str, setting: str) -> Path:
    if path is None:
        raise ModelError(f"no {what} model: none is committed under models/checkpoints and "
                         f"models.{setting} is unset")
    return path


class DefaultClassifier(Classifier):
    """Shipped checkpoints (or the user's own, from ModelSettings) behind one batched call."""

    name = "default"

    def __init__(self, settings: ModelSettings) -> None:
        kw: dict[str, Any] = {
            "device": settings.device, "max_length": settings.max_length,
            "batch_size": settings.batch_size, "threads": settings.threads,
            "cache_dir": settings.derived_cache,
            "backend": settings.backend if settings.quantize or settings.backend != "auto"
            else "torch",
        }
        self.sentiment = TextModel(_need(settings.sentiment_path or shipped("en-sentiment"),
                                         "English sentiment", "sentiment_path"), **kw)
        self.topic = TextModel(_need(settings.topic_path or shipped("en-topic"),
                                     "English topic", "topic_path"), **kw)
        zh_path = settings.zh_sentiment_path or shipped("zh-sentiment")
        self.zh_sentiment: TextModel | None = TextModel(zh_path, **kw) if zh_path else None
        if self.zh_sentiment is None:
            log.warning("no Chinese sentiment model (models/checkpoints/zh-sentiment or "
                        "models.zh_sentiment_path): Chinese text will be scored by the English "
                        "model %s", self.sentiment.path)
        for m in (self.sentiment, self.zh_sentiment):
            if m is not None and m.labels != SENTIMENT_LABELS:
                raise ModelError(f"sentiment model {m.path} has labels {m.labels}, "
                                 f"expected {SENTIMENT_LABELS}")
        parts = [self.sentiment, self.topic] + ([self.zh_sentiment] if self.zh_sentiment else [])
        self.version = "+".join(f"{m.name}@{m.version}" for m in parts)

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        cleaned = [clean_text(t) for t in texts]
        langs = [detect_language(t) if t else "" for t, _ in cleaned]
        en = [i for i, (t, _) in enumerate(cleaned) if t and langs[i] == "en"]
        zh = [i for i, (t, _) in enumerate(cleaned) if t and langs[i] == "zh"]
        sent = np.tile(np.array([0.0, 1.0, 0.0], dtype=np.float32), (len(texts), 1))
        zh_model = self.zh_sentiment or self.sentiment
        for idx, model in ((en, self.sentiment), (zh, zh_model)):
            if idx:
                sent[idx] = model.probs([cleaned[i][0] for i in idx])
        topic = self.topic.probs([cleaned[i][0] for i in en]) if en else None
        topic_row = {i: r for r, i in enumerate(en)}
        out = []
        for i, (_, notes) in enumerate(cleaned):
            probs = {lab: float(p) for lab, p in zip(SENTIMENT_LABELS, sent[i], strict=True)}
            extra = dict(notes)
            lang = langs[i] or None
            model = zh_model if lang == "zh" else self.sentiment
            if "skipped" in notes:
                probs = dict(_NEUTRAL)
            if i in topic_row and topic is not None:
                t_probs = {lab: float(p) for lab, p in
                           zip(self.topic.labels, topic[topic_row[i]], strict=True)}
                t_label = self.topic.labels[int(np.argmax(topic[topic_row[i]]))]
            else:
                t_probs, t_label = {}, ""
                if lang == "zh":
                    extra["topic_skipped"] = "the topic model is English-only"
            if lang == "zh" and self.zh_sentiment is None:
                extra["fallback"] = "no Chinese model: scored by the English model"
            out.append(Prediction(
                sentiment=max(probs, key=probs.__getitem__), sentiment_probs=probs,
                topic=t_label, topic_probs=t_probs,
                model_name=f"{self.name}/{model.name}" + (f"+{self.topic.name}" if t_label
                                                          else ""),
                model_version=self.version, language=lang, extra=extra))
        return out


def build(settings: ModelSettings) -> Classifier:
    return DefaultClassifier(settings)
