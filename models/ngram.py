"""Character n-gram TF-IDF + logistic regression: the Chinese baseline, and a blend partner.

`baseline(train, test)` is the reference the issue measures Chinese models against (exact
TF-IDF vocabulary, char 1-3 grams). The shipped blend uses a HASHED form of the same features
(2**16 buckets, fp16 idf and coefficients: about 0.5 MB) so it fits in the repository:
P = w * P_encoder + (1 - w) * P_ngram, with w chosen on a dev slice the encoder never trained
on, and the file records which encoder (weights hash) it was fitted for: a different encoder
gets no blend (the weight would be meaningless).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
N_FEATURES = 2 ** 16
NGRAMS = (1, 3)


def _hasher(n_features: int = N_FEATURES) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(analyzer="char", ngram_range=NGRAMS, n_features=n_features,
                             alternate_sign=False, norm=None, lowercase=True)


@dataclass
class NgramModel:
    """Hashed char n-gram TF-IDF + multinomial logistic regression, inference in numpy."""

    idf: np.ndarray  # (n_features,)
    coef: np.ndarray  # (classes, n_features)
    intercept: np.ndarray  # (classes,)

    def features(self, texts: Sequence[str]) -> Any:
        from sklearn.preprocessing import normalize

        x = _hasher(len(self.idf)).transform(list(texts)).astype(np.float32)
        x.data = np.log1p(x.data)  # sublinear tf
        x = x.multiply(self.idf.astype(np.float32)[None, :]).tocsr()
        return normalize(x)

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        from finsentry.models.runtime import softmax

        z = self.features(texts) @ self.coef.astype(np.float32).T + self.intercept
        return softmax(np.asarray(z, dtype=np.float32))

    @classmethod
    def fit(cls, texts: Sequence[str], y: Sequence[int], c: float = 10.0,
            n_features: int = N_FEATURES) -> NgramModel:
        from sklearn.linear_model import LogisticRegression

        counts = _hasher(n_features).transform(list(texts))
        df = np.bincount(counts.nonzero()[1], minlength=n_features)
        idf = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float16)
        model = cls(idf, np.zeros((0, n_features), np.float16), np.zeros(0, np.float32))
        lr = LogisticRegression(C=c, max_iter=2000)
        lr.fit(model.features(texts), list(y))
        model.coef = lr.coef_.astype(np.float16)
        model.intercept = lr.intercept_.astype(np.float32)
        return model


def baseline(train_texts: Sequence[str], train_y: Sequence[int], test_texts: Sequence[str],
             c: float = 10.0) -> np.ndarray:
    """Reference TF-IDF (exact vocabulary, char 1-3 grams, sublinear tf) + LR: test probs."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char", ngram_range=NGRAMS, sublinear_tf=True)
    lr = LogisticRegression(C=c, max_iter=2000)
    lr.fit(vec.fit_transform(list(train_texts)), list(train_y))
    return np.asarray(lr.predict_proba(vec.transform(list(test_texts))))


@dataclass
class Blend:
    ngram: NgramModel
    weight: float  # of the encoder
    encoder_version: str
    name: str = "ngram-blend"

    @property
    def version(self) -> str:
        import hashlib

        return hashlib.sha256(self.ngram.coef.tobytes()).hexdigest()[:12]

    def blend(self, encoder_probs: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        if self.weight >= 1.0 or not len(texts):
            return encoder_probs
        return (self.weight * encoder_probs
                + (1 - self.weight) * self.ngram.probs(texts)).astype(np.float32)

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        meta = {**meta, "weight": self.weight, "encoder_version": self.encoder_version,
                "n_features": len(self.ngram.idf), "ngrams": list(NGRAMS)}
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, idf=self.ngram.idf, coef=self.ngram.coef,
                            intercept=self.ngram.intercept, meta=np.array(json.dumps(meta)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Blend:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            return cls(NgramModel(z["idf"], z["coef"], z["intercept"]), float(meta["weight"]),
                       str(meta["encoder_version"]))


def blend_file(encoder_name: str) -> str:
    return f"{encoder_name}-ngram-blend.npz"


def load_blend(model: Any, folder: Path = ARTEFACTS) -> Blend | None:
    """The shipped blend when it was fitted for exactly this encoder's weights
    (`<encoder folder name>-ngram-blend.npz`, e.g. zh-sentiment or zh-multitask)."""
    path = folder / blend_file(getattr(model, "name", "zh-sentiment"))
    if not path.is_file():
        return None
    blend = Blend.load(path)
    if blend.encoder_version != getattr(model, "version", None):
        log.info("n-gram blend %s was fitted for encoder %s, not %s: not used", path,
                 blend.encoder_version, getattr(model, "version", None))
        return None
    return blend


def choose_weight(enc: np.ndarray, ng: np.ndarray, y: Sequence[int]) -> float:
    """Encoder weight in 0, 0.05 .. 1 with the best dev accuracy (ties: lower log-loss)."""
    yt = np.asarray(y)

    def key(w: float) -> tuple[float, float]:
        p = w * enc + (1 - w) * ng
        ll = -np.log(np.clip(p[np.arange(len(p)), yt], 1e-12, None)).mean()
        return (float((p.argmax(-1) == yt).mean()), -float(ll))

    return max((round(w, 2) for w in np.linspace(0, 1, 21)), key=key)


def sentiment_probs(encoder: Any, texts: Sequence[str]) -> np.ndarray:
    """The sentiment head of a multi-task encoder, else the model's only head."""
    if "sentiment" in getattr(encoder, "heads", {}):
        return np.asarray(encoder.head_probs(texts)["sentiment"])
    return np.asarray(encoder.probs(texts))


def fit_zh_blend(root: Path, encoder: Any, out: Path, command: str = "",
                 n_features: int = N_FEATURES) -> dict[str, Any]:
    """FinFE: the encoder weight is chosen on dev with an n-gram model fitted on the training
    rows minus dev; the shipped n-gram model is then refitted on all training rows (the weight
    kept). Figures with 95% CIs on the held-out slice for the reference baseline, the n-gram
    model, the encoder and the blend.

    `encoder` is a loaded TextModel; dev is the same 10% slice (seed 42) of the training rows
    that the encoder's own run used for early stopping, so it never trained on it. Encoder
    probabilities are cached next to `out` per encoder version (reruns are cheap)."""
    from finsentry.models import data as D
    from finsentry.models.calibration import bootstrap_ci, ece
    from finsentry.models.train import _split_dev

    train, test = D.finfe(root)
    fit, dev = _split_dev(train, 0.1, D.SEED)
    cache = out.with_name(f"finfe-encoder-probs-{encoder.version}.npz")
    if cache.is_file():
        with np.load(cache) as z:
            enc_dev, enc_test = z["dev"], z["test"]
    else:
        enc_dev, enc_test = sentiment_probs(encoder, dev.texts), sentiment_probs(encoder,
                                                                                test.texts)
        np.savez(cache, dev=enc_dev, test=enc_test)
    w = choose_weight(enc_dev, NgramModel.fit(fit.texts, fit.targets, n_features=n_features)
                      .probs(dev.texts), dev.targets)
    ng = NgramModel.fit(train.texts, train.targets, n_features=n_features)
    blend = Blend(ng, w, encoder.version)
    y = test.targets

    def fig(p: np.ndarray) -> dict[str, Any]:
        pred = p.argmax(-1)
        return {"accuracy": round(float((pred == np.asarray(y)).mean()), 4),
                "accuracy_ci": list(bootstrap_ci(y, pred)), "ece": ece(p, y)}

    report = {"n_test": len(y), "n_dev": len(dev), "encoder_weight": w,
              "n_features": n_features,
              "baseline_tfidf_lr": fig(baseline(train.texts, train.targets, test.texts)),
              "ngram_hashed": fig(ng.probs(test.texts)), "encoder_alone": fig(enc_test),
              "blend": fig(blend.blend(enc_test, test.texts)),
              "encoder": str(encoder.path), "encoder_version": encoder.version,
              "command": command}
    blend.save(out, report)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report
