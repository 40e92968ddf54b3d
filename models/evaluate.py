"""Evaluation on MANIFEST.md's protocol: accuracy (with its 95% bootstrap interval), macro/weighted
F1, expected calibration error when probabilities are given, per-class report, confusion.

Results are written as JSON (machine-readable) and Markdown (for model cards and reviews).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finsentry.errors import ModelError
from finsentry.models import data as D
from finsentry.models.runtime import batched_logits, softmax

Predict = Callable[[Sequence[str]], Any]  # label ids, or an (n, classes) probability array


def score(split: D.Split, predicted: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """All figures for one evaluation set; `predicted` may be ids or class probabilities."""
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        f1_score,
    )

    from finsentry.models.calibration import bootstrap_ci, ece

    probs = np.asarray(predicted) if np.ndim(predicted) == 2 else None
    y = list(split.targets)
    p = probs.argmax(-1).tolist() if probs is not None else list(predicted)
    ids = list(range(len(split.labels)))
    extra = {"ece": ece(probs, y)} if probs is not None else {}
    return {
        "set": split.name, "n": len(y),
        "accuracy": round(float(accuracy_score(y, p)), 4),
        "accuracy_ci": list(bootstrap_ci(y, p)), **extra,
        "macro_f1": round(float(f1_score(y, p, average="macro", labels=ids, zero_division=0)), 4),
        "weighted_f1": round(float(f1_score(y, p, average="weighted", labels=ids,
                                            zero_division=0)), 4),
        "per_class": classification_report(y, p, labels=ids, target_names=list(split.labels),
                                           output_dict=True, zero_division=0),
        "labels": list(split.labels),
        "confusion": confusion_matrix(y, p, labels=ids).tolist(),
    }


def evaluate(predict: Predict, names: Iterable[str], root: Path) -> dict[str, dict[str, Any]]:
    """Run `predict` (texts -> label indices) on the named MANIFEST evaluation sets."""
    report = {}
    for name in names:
        if name not in D.EVAL_SETS:
            raise ModelError(f"unknown evaluation set {name!r}; known: {', '.join(D.EVAL_SETS)}")
        split = D.EVAL_SETS[name][0](root)
        report[name] = score(split, predict(split.texts))
    return report


def evaluate_model(model: Any, tok: Any, names: Iterable[str], root: Path, max_length: int,
                   device: str = "cpu", temperature: float = 1.0) -> dict[str, dict[str, Any]]:
    """Evaluate an in-memory torch classifier (used at the end of training)."""
    def predict(texts: Sequence[str]) -> np.ndarray:
        return softmax(batched_logits(model, tok, texts, max_length, 128, device), temperature)

    return evaluate(predict, names, root)


def to_markdown(report: dict[str, dict[str, Any]], title: str = "Evaluation") -> str:
    from finsentry.models.calibration import format_ci

    lines = [f"# {title}", "", "| set | n | accuracy [95% CI] | macro F1 | weighted F1 | ECE |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in report.items():
        ece = f"{r['ece']:.4f}" if "ece" in r else "-"
        lines.append(f"| {name} | {r['n']} | {format_ci(r['accuracy'], r.get('accuracy_ci'))} | "
                     f"{r['macro_f1']:.4f} | {r['weighted_f1']:.4f} | {ece} |")
    for name, r in report.items():
        labels = r["labels"]
        lines += ["", f"## {name}", "", "| class | precision | recall | F1 | support |",
                  "|---|---:|---:|---:|---:|"]
        for lab in labels:
            c = r["per_class"][lab]
            lines.append(f"| {lab} | {c['precision']:.3f} | {c['recall']:.3f} | "
                         f"{c['f1-score']:.3f} | {int(c['support'])} |")
        lines += ["", "Confusion matrix (rows = true, columns = predicted):", "",
                  "| true \\ pred | " + " | ".join(labels) + " |",
                  "|---|" + "---:|" * len(labels)]
        for lab, row in zip(labels, r["confusion"], strict=True):
            lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, dict[str, Any]], out: Path, title: str) -> tuple[Path, Path]:
    """Write `<out>.json` and `<out>.md`; returns both paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    j, m = out.with_suffix(".json"), out.with_suffix(".md")
    j.write_text(json.dumps(report, indent=2))
    m.write_text(to_markdown(report, title))
    return j, m
