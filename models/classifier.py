"""The "default" classifier: English sentiment + topic, Chinese sentiment, bad inputs handled.

Routing: a text whose non-space characters are >= 20% CJK ideographs is Chinese. Per language a
multi-task checkpoint (`en-multitask` / `zh-multitask`, models/multitask.py: one forward pass
gives sentiment AND topic) is preferred when configured or shipped; otherwise English text goes
through the sentiment and topic models, Chinese text through the Chinese sentiment model
(committed `zh-sentiment`, or `models.zh_sentiment_path`; blended with the shipped character
n-gram model when models/artefacts holds one fitted for it, models/ngram.py); without any
Chinese model it falls back to the English model and logs a warning once. Chinese text without a
Chinese topic head gets topic "" (no guess), `extra["topic_skipped"]` says why. Every topic
also gets its cross-language theme in `extra["theme"]` (models/taxonomy.py).

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
from finsentry.models.multitask import MultiTaskModel, is_multitask
from finsentry.models.ngram import load_blend
from finsentry.models.paths import shipped
from finsentry.models.taxonomy import theme

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


def _shipped_mt(name: str) -> Path | None:
    path = shipped(name)
    return path if is_multitask(path) else None


class DefaultClassifier(Classifier):
    """Shipped checkpoints (or the user's own, from ModelSettings) behind one batched call.

    Per language, a multi-task checkpoint (one pass -> sentiment + topic) is used when one is
    configured or shipped; otherwise today's separate models (English sentiment + topic,
    Chinese sentiment, optionally blended with the shipped character n-gram model).
    """

    name = "default"

    def __init__(self, settings: ModelSettings) -> None:
        kw: dict[str, Any] = {
            "device": settings.device, "max_length": settings.max_length,
            "batch_size": settings.batch_size, "threads": settings.threads,
            "parallel": settings.parallel,
            "cache_dir": settings.derived_cache,
            "backend": settings.backend if settings.quantize or settings.backend != "auto"
            else "torch",
        }
        en_mt = settings.en_multitask_path or (
            None if settings.sentiment_path or settings.topic_path
            else _shipped_mt("en-multitask") if "en" in settings.multitask_languages else None)
        self.en_multitask = MultiTaskModel(en_mt, **kw) if en_mt else None
        self.topic: TextModel | None = None
        if self.en_multitask is not None:
            self.sentiment: TextModel = self.en_multitask
        else:
            self.sentiment = TextModel(_need(settings.sentiment_path or shipped("en-sentiment"),
                                             "English sentiment", "sentiment_path"), **kw)
            self.topic = TextModel(_need(settings.topic_path or shipped("en-topic"),
                                         "English topic", "topic_path"), **kw)
        zh_mt = settings.zh_multitask_path or (
            None if settings.zh_sentiment_path or "zh" not in settings.multitask_languages
            else _shipped_mt("zh-multitask"))
        self.zh_multitask = MultiTaskModel(zh_mt, **kw) if zh_mt else None
        zh_path = None if zh_mt else settings.zh_sentiment_path or shipped("zh-sentiment")
        self.zh_sentiment: TextModel | None = (
            self.zh_multitask or (TextModel(zh_path, **kw) if zh_path else None))
        self.zh_blend = load_blend(self.zh_sentiment) if self.zh_sentiment else None
        if self.zh_sentiment is None:
            log.warning("no Chinese sentiment model (models/checkpoints/zh-sentiment or "
                        "models.zh_sentiment_path): Chinese text will be scored by the English "
                        "model %s", self.sentiment.path)
        for m in (self.sentiment, self.zh_sentiment):
            if m is not None and _sentiment_labels(m) != SENTIMENT_LABELS:
                raise ModelError(f"sentiment model {m.path} has labels {_sentiment_labels(m)}, "
                                 f"expected {SENTIMENT_LABELS}")
        parts = [p for p in (self.sentiment, self.topic, self.zh_sentiment) if p is not None]
        self.version = "+".join(f"{m.name}@{m.version}" for m in parts)
        if self.zh_blend is not None:
            self.version += f"+{self.zh_blend.name}@{self.zh_blend.version}"

    def _score(self, lang: str, texts: list[str]) -> tuple[np.ndarray, Scored | None, TextModel]:
        """Sentiment probabilities, topic (probabilities, labels) or None, and the model."""
        if lang == "zh" and self.zh_sentiment is not None:
            model = self.zh_sentiment
        else:
            model = self.sentiment
        if isinstance(model, MultiTaskModel):
            heads = model.head_probs(texts)
            topic = (heads["topic"], model.heads["topic"].labels) if "topic" in heads else None
            sent = heads["sentiment"]
        else:
            sent, topic = model.probs(texts), None
            if lang == "en" and self.topic is not None:
                topic = (self.topic.probs(texts), self.topic.labels)
        if lang == "zh" and model is self.zh_sentiment and self.zh_blend is not None:
            sent = self.zh_blend.blend(sent, texts)
        return sent, topic, model

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        cleaned = [clean_text(t) for t in texts]
        langs = [detect_language(t) if t else "" for t, _ in cleaned]
        out: list[Prediction | None] = [None] * len(texts)
        for lang in ("en", "zh"):
            idx = [i for i, (t, _) in enumerate(cleaned) if t and langs[i] == lang]
            if not idx:
                continue
            sent, topic, model = self._score(lang, [cleaned[i][0] for i in idx])
            for r, i in enumerate(idx):
                out[i] = self._prediction(cleaned[i][1], lang, sent[r], model,
                                          None if topic is None else (topic[0][r], topic[1]))
        for i, (_, notes) in enumerate(cleaned):
            if out[i] is None:  # skipped input: neutral, no topic
                out[i] = Prediction(
                    sentiment="neutral", sentiment_probs=dict(_NEUTRAL), topic="",
                    topic_probs={}, model_name=f"{self.name}/{self.sentiment.name}",
                    model_version=self.version, language=langs[i] or None, extra=dict(notes))
        return [p for p in out if p is not None]

    def _prediction(self, notes: dict[str, object], lang: str, sent: np.ndarray,
                    model: TextModel, topic: tuple[np.ndarray, tuple[str, ...]] | None
                    ) -> Prediction:
        probs = {lab: float(p) for lab, p in zip(SENTIMENT_LABELS, sent, strict=True)}
        extra = dict(notes)
        name = f"{self.name}/{model.name}"
        t_probs: dict[str, float] = {}
        t_label = ""
        if topic is not None:
            t_probs = {lab: float(p) for lab, p in zip(topic[1], topic[0], strict=True)}
            t_label = topic[1][int(np.argmax(topic[0]))]
            extra["theme"] = theme(lang, t_label)
            if self.topic is not None and lang == "en":
                name += f"+{self.topic.name}"
        elif lang == "zh":
            extra["topic_skipped"] = "no Chinese topic model (zh-multitask) is loaded"
        if lang == "zh" and self.zh_sentiment is None:
            extra["fallback"] = "no Chinese model: scored by the English model"
        if lang == "zh" and model is self.zh_sentiment and self.zh_blend is not None:
            extra["blend"] = f"{self.zh_blend.name} (encoder weight {self.zh_blend.weight})"
        return Prediction(sentiment=max(probs, key=probs.__getitem__), sentiment_probs=probs,
                          topic=t_label, topic_probs=t_probs, model_name=name,
                          model_version=self.version, language=lang, extra=extra)


Scored = tuple[np.ndarray, tuple[str, ...]]


def _sentiment_labels(model: TextModel) -> tuple[str, ...]:
    return model.heads["sentiment"].labels if "sentiment" in model.heads else model.labels


def build(settings: ModelSettings) -> Classifier:
    return DefaultClassifier(settings)
