"""Model cards (README.md in each model folder): base, data, command, seed, metrics, licences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment

from finsentry.models.calibration import format_ci

EVAL_KEYS = ("accuracy", "accuracy_ci", "macro_f1", "weighted_f1", "ece", "n")

_DATA = {
    ("sentiment", "en"): ("Financial PhraseBank Sentences_50Agree (MANIFEST train split, minus "
                          "every FPB-50 and FPB-All test sentence) + Twitter Financial News "
                          "Sentiment sent_train.csv (bearish->negative, bullish->positive)"),
    ("topic", "en"): "Twitter Financial News Topic train.parquet (20 classes)",
    ("sentiment", "zh"): ("BBT-FinCUGE FinFE train_list.json minus the held-out slice "
                          "(stratified test_size=0.1, random_state=42)"),
}
_LICENCE = {
    ("sentiment", "en"): ("cc-by-nc-sa-3.0", "Trained on the Financial PhraseBank (Malo et al. "
                          "2014), licensed CC BY-NC-SA 3.0: these weights are for NON-COMMERCIAL "
                          "use only and derivatives must be shared alike. TFNS data: MIT."),
    ("topic", "en"): ("mit", "Training data: Twitter Financial News Topic (MIT)."),
    ("sentiment", "zh"): ("other", "Training data: BBT-FinCUGE FinFE, no licence stated "
                          "(research use)."),
}

_TEMPLATE = """---
license: {{ licence_id }}
language: [{{ cfg.lang }}]
library_name: transformers
pipeline_tag: text-classification
tags: [finance, {{ cfg.task }}, finsentry]
---
# finsentry {{ cfg.lang }}-{{ cfg.task }}

A sequence classifier for {{ what }} ({{ cfg.lang }}), produced by finsentry's own train
command. Standard Hugging Face layout (fp16 safetensors, `config.json` with `id2label`); load it
with `AutoModelForSequenceClassification.from_pretrained(folder)`.

**Labels:** {{ labels | join(', ') }}

## Licence
{{ licence_text }} Base model licence: Apache-2.0.

## Base model
{% if lineage %}`{{ lineage[0].base }}` ({{ method }}){{ distill }}, trained in
{{ lineage | length + 1 }} runs: this one continued from `{{ cfg.base }}`.
Earlier runs, oldest first:
{% for run in lineage %}
{{ loop.index }}. `{{ run.command or run.base }}` (epochs {{ run.epochs }}, lr {{ run.lr }},
   best dev step {{ run.best_step }}, {{ run.train_seconds }} s)
{%- endfor %}
{% else %}`{{ cfg.base }}` ({{ base_dir.name }}, {{ method }}){{ distill }}.
{% endif %}
## Data
{{ data }}. {{ metrics.train_examples }} training examples, {{ metrics.dev_examples }} dev
examples (a stratified slice of the training data, used for early stopping).

## Training
- command: `{{ cfg.command or '(Python API)' }}`
- seed {{ cfg.seed }}, epochs {{ cfg.epochs }}, max length {{ cfg.max_length }},
  batch {{ cfg.batch_size }}, best dev step {{ metrics.best_step }},
  {{ metrics.train_seconds }} s of training

## Metrics (MANIFEST.md protocol)
{% if rows %}| set | n | accuracy [95% bootstrap CI] | macro F1 | weighted F1 | ECE |
|---|---:|---:|---:|---:|---:|
{% for row in rows %}{{ row }}
{% endfor %}{% else %}Not evaluated (no evaluation data at training time).
{% endif %}
{% if calibration %}
Calibration: temperature {{ calibration.temperature }} fitted on dev (stored in `config.json` as
`finsentry_temperature`); dev ECE {{ calibration.dev_ece_before }} before,
{{ calibration.dev_ece_after }} after. Test-set ECE above is after the temperature.
{% endif %}
Dev history: {{ history }}
"""


def write_card(out: Path, cfg: Any, metrics: dict[str, Any], base_dir: Path,
               lineage: list[dict[str, Any]] | None = None) -> Path:
    key = (cfg.task, cfg.lang)
    licence_id, licence_text = _LICENCE.get(key, ("other", "See the training data's licence."))
    env = Environment(autoescape=False, keep_trailing_newline=True)  # noqa: S701 (Markdown)
    rows = eval_rows(metrics.get("eval", {}))
    history = "; ".join(f"step {h['step']} acc {h['dev_accuracy']:.4f} "
                        f"F1 {h['dev_macro_f1']:.4f}" for h in metrics.get("history", []))
    distill = ""
    if cfg.distill_from:
        distill = (f", distilled from teacher `{cfg.distill_from}` (T={cfg.temperature}, "
                   f"alpha={cfg.distill_alpha}) with {metrics['unlabelled_examples']} "
                   "unlabelled texts")
    text = env.from_string(_TEMPLATE).render(
        what="financial sentiment" if cfg.task == "sentiment" else "financial topics",
        method="LoRA r=16, merged" if cfg.lora else "full fine-tune", distill=distill,
        rows=rows, history=history, calibration=metrics.get("calibration"),
        cfg=cfg, metrics=metrics, base_dir=Path(base_dir), lineage=lineage or [],
        licence_id=licence_id,
        licence_text=licence_text, data=_DATA.get(key, "custom data"),
        labels=list(getattr(cfg.train_data, "labels", None) or _labels(key)))
    path = Path(out) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def eval_rows(report: dict[str, Any]) -> list[str]:
    """Markdown rows: set, n, accuracy with its CI, macro/weighted F1, ECE (when known)."""
    return [f"| {name} | {m['n']} | {format_ci(m['accuracy'], m.get('accuracy_ci'))} | "
            f"{m['macro_f1']:.4f} | {m['weighted_f1']:.4f} | "
            f"{m['ece'] if 'ece' in m else '-'} |" for name, m in report.items()]


def _labels(key: tuple[str, str]) -> tuple[str, ...]:
    from finsentry.models.base import SENTIMENT_LABELS
    from finsentry.models.data import TOPIC_LABELS

    return TOPIC_LABELS if key[0] == "topic" else SENTIMENT_LABELS


_MT_TEMPLATE = """---
license: {{ licence_id }}
language: [{{ cfg.lang }}]
library_name: transformers
tags: [finance, sentiment, topic, multi-task, finsentry]
---
# finsentry {{ cfg.lang }}-multitask

One encoder, {{ heads | length }} heads ({{ heads | join(', ') }}): each document costs ONE
forward pass. Layout: a standard encoder folder (`config.json`, fp16 `model.safetensors`,
tokenizer; `AutoModel.from_pretrained(folder)`) plus `heads.safetensors` (one linear layer per
head on the attention-masked MEAN of the last hidden states; its metadata `finsentry` holds the
labels and the softmax temperature fitted on dev). Loading without finsentry:

{{ loader }}

{% for h, labs in heads.items() %}- **{{ h }}** labels: {{ labs | join(', ') }}
{% endfor %}
## Licence
{{ licence_text }}

## Training
- base: `{{ cfg.base }}` ({{ base_dir.name }}), full fine-tune, heads trained jointly{{ distill }}
- command: `{{ cfg.command or '(Python API)' }}`
- seed {{ cfg.seed }}, epochs {{ cfg.epochs }}, max length {{ cfg.max_length }},
  batch {{ cfg.batch_size }}, lr {{ cfg.lr }} (heads {{ cfg.head_lr }}), best dev step
  {{ metrics.best_step }} (mean dev macro F1 over the heads), {{ metrics.train_seconds }} s
- training examples per head {{ metrics.train_examples }}, dev {{ metrics.dev_examples }}{% if
  metrics.nsp_examples %}, FinNSP negative flags {{ metrics.nsp_examples }} (weight
  {{ cfg.nsp_weight }}){% endif %}

## Metrics (MANIFEST.md protocol, chosen on dev only)
{% for h, rows in tables.items() %}
### {{ h }} head
{% if rows %}| set | n | accuracy [95% bootstrap CI] | macro F1 | weighted F1 | ECE |
|---|---:|---:|---:|---:|---:|
{% for row in rows %}{{ row }}
{% endfor %}{% else %}Not evaluated.
{% endif %}{% endfor %}
Calibration (temperature fitted on dev; ECE before -> after on dev): {{ calibration }}

Dev history: {{ history }}
"""


def write_mt_card(out: Path, cfg: Any, metrics: dict[str, Any], base_dir: Path,
                  heads: dict[str, tuple[str, ...]]) -> Path:
    """README.md of a multi-task folder: layout, the no-finsentry loader, figures per head."""
    from finsentry.models.multitask import LOADER

    licence_id, licence_text = _LICENCE.get(("sentiment", cfg.lang), ("other", ""))
    if cfg.lang == "zh":
        licence_text += " FinNL / FinNSP (topic head, negative flag): no licence stated."
    else:
        licence_text += " Topic head: Twitter Financial News Topic (MIT)."
    distill = ""
    if cfg.soft_labels:
        distill = (f"; sentiment head distilled from the teacher soft labels `{cfg.soft_labels}` "
                   f"(T={cfg.temperature}, alpha={cfg.distill_alpha}) on "
                   f"{metrics.get('teacher_scored')} texts")
    calib = "; ".join(f"{h}: T={c['temperature']}, {c['dev_ece_before']} -> {c['dev_ece_after']}"
                      for h, c in metrics.get("calibration", {}).items())
    history = "; ".join(f"step {h['step']} score {h['dev_score']:.4f}"
                        for h in metrics.get("history", []))
    env = Environment(autoescape=False, keep_trailing_newline=True)  # noqa: S701 (Markdown)
    text = env.from_string(_MT_TEMPLATE).render(
        cfg=cfg, metrics=metrics, base_dir=Path(base_dir), heads=heads, loader=LOADER,
        licence_id=licence_id, licence_text=licence_text, distill=distill, calibration=calib,
        history=history, tables={h: eval_rows(metrics.get("eval", {}).get(h, {}))
                                 for h in heads})
    path = Path(out) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
