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
