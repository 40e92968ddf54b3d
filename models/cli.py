"""`finsentry models ...`: train, evaluate and try the classifiers (heavy imports inside)."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import click

from finsentry.config import Settings
from finsentry.errors import ModelError


def _data_root(settings: Settings, given: Path | None) -> Path:
    from finsentry.models.paths import data_root

    return given or data_root(settings.models)


@click.group("models")
def models_group() -> None:
    """Train, evaluate and run the sentiment/topic classifiers."""


@models_group.command("train")
@click.option("--task", type=click.Choice(["sentiment", "topic"]), required=True)
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--base", default="minilm-l6", show_default=True,
              help="Registered base name (see finsentry.models.bases.BASES) or a model folder.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--lora", is_flag=True, help="Parameter-efficient fine-tuning (merged on save).")
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--max-length", type=int, default=64, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=None, help="Default 5e-5 (full) or 5e-4 (LoRA).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--patience", type=int, default=2, show_default=True)
@click.option("--eval-every", type=int, default=0, help="Dev evaluation every N steps (0=epoch).")
@click.option("--distill-from", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Teacher model folder: train on its soft labels + unlabelled texts.")
@click.option("--unlabelled-limit", type=int, default=None)
@click.option("--limit", type=int, default=None, help="Cap training examples (smoke runs).")
@click.option("--threads", type=int, default=None)
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data root (default: models.data_root).")
@click.option("--no-eval", is_flag=True, help="Skip the MANIFEST evaluation at the end.")
@click.option("--train-embeddings", is_flag=True,
              help="Also update the word embeddings (frozen by default: faster on CPU).")
@click.option("--checkpoint-every", type=int, default=200, show_default=True,
              help="Steps between resumable state saves (large bases: save more often).")
@click.option("--stop-after", type=int, default=None,
              help="Return after N steps (state saved); rerun the same command to resume.")
@click.pass_obj
def train_command(settings: Settings, task: str, lang: str, base: str, out: Path, lora: bool,
                  epochs: int, max_length: int, batch_size: int, lr: float | None, seed: int,
                  patience: int, eval_every: int, distill_from: Path | None,
                  unlabelled_limit: int | None, limit: int | None, threads: int | None,
                  data: Path | None, no_eval: bool, train_embeddings: bool,
                  checkpoint_every: int, stop_after: int | None) -> None:
    """Fine-tune a base model; resumes from <out>/_state when a run was interrupted."""
    from finsentry.models.train import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = TrainConfig(
        task=task, lang=lang, base=base, out=out, lora=lora, epochs=epochs,
        max_length=max_length, batch_size=batch_size, lr=lr, seed=seed, patience=patience,
        eval_every=eval_every, distill_from=distill_from, unlabelled_limit=unlabelled_limit,
        limit=limit, threads=threads or settings.models.threads,
        data_root=_data_root(settings, data), base_cache=settings.models.base_cache,
        evaluate=not no_eval, freeze_embeddings=not train_embeddings,
        checkpoint_every=checkpoint_every, stop_after=stop_after,
        command=_command_line(click.get_current_context()))
    metrics = train(cfg)
    click.echo(json.dumps(metrics.get("eval", {}), indent=2))


@models_group.command("eval")
@click.option("--model", "model_path", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="A model folder (HF layout).")
@click.option("--sets", default=None, help="Comma-separated: fpb50,fpball,tfns,topic,finfe "
              "(default: by the model's labels).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Report path without suffix (writes .json and .md); default <model>/eval")
@click.option("--max-length", type=int, default=None)
@click.option("--backend", type=click.Choice(["auto", "torch", "int8", "onnx"]), default="torch",
              show_default=True)
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.pass_obj
def eval_command(settings: Settings, model_path: Path, sets: str | None, out: Path | None,
                 max_length: int | None, backend: str, data: Path | None) -> None:
    """Evaluate a model folder on the MANIFEST.md protocol; writes JSON + Markdown."""
    from finsentry.models.engine import TextModel
    from finsentry.models.evaluate import evaluate, write_report
    from finsentry.models.multitask import MultiTaskModel, is_multitask
    from finsentry.models.train_mt import EVAL

    cls = MultiTaskModel if is_multitask(model_path) else TextModel
    m = cls(model_path, device=settings.models.device, backend=backend,
            max_length=max_length or settings.models.max_length,
            batch_size=settings.models.batch_size, threads=settings.models.threads,
            cache_dir=settings.models.derived_cache)
    root = _data_root(settings, data)
    if cls is MultiTaskModel:  # one report over every head's sets
        report = {}
        for head in m.heads:
            names = EVAL.get((m.language, head), ())
            if sets:
                names = tuple(n for n in sets.split(",") if n in names)
            report.update(evaluate(lambda t, h=head: m.head_probs(t)[h], names, root))
    else:
        names = sets.split(",") if sets else _default_sets(m.labels, m.language)
        report = evaluate(m.probs, names, root)
    j, md = write_report(report, out or model_path / "eval", f"Evaluation of {model_path}")
    for name, r in report.items():
        click.echo(f"{name}: accuracy {r['accuracy']:.4f} macro-F1 {r['macro_f1']:.4f} "
                   f"weighted-F1 {r['weighted_f1']:.4f} (n={r['n']})")
    click.echo(f"wrote {j} and {md}")


def _command_line(ctx: click.Context) -> str:
    """The train command as given (options set on the command line), for the model card."""
    from click.core import ParameterSource

    words = ctx.command_path.split()
    words[0] = "finsentry"
    for param in ctx.command.params:
        name = param.name or ""
        if ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[name]
        flag = max(param.opts, key=len)
        if isinstance(value, bool):
            words += [flag] if value else []
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def _default_sets(labels: tuple[str, ...], language: str) -> list[str]:
    if len(labels) == 3:
        return ["finfe"] if language == "zh" else ["fpb50", "fpball", "tfns"]
    if len(labels) == 20:
        return ["topic"]
    raise ModelError("cannot guess evaluation sets for these labels; pass --sets")


@models_group.command("predict")
@click.argument("texts", nargs=-1, required=True)
@click.pass_obj
def predict_command(settings: Settings, texts: tuple[str, ...]) -> None:
    """Classify the given texts with the configured classifier (prints JSON lines)."""
    from finsentry.models.base import load_classifier

    clf = load_classifier(settings.models)
    for text, p in zip(texts, clf.predict_batch(list(texts)), strict=True):
        click.echo(json.dumps({"text": text, "sentiment": p.sentiment, "score": round(p.score, 4),
                               "probs": p.sentiment_probs, "topic": p.topic,
                               "language": p.language, "model": p.model_name,
                               "version": p.model_version}, ensure_ascii=False))


@models_group.command("train-mt")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--base", default="minilm-l6", show_default=True,
              help="Registered base name (see finsentry.models.bases.BASES) or a model folder.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--epochs", type=int, default=2, show_default=True)
@click.option("--max-length", type=int, default=64, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=5e-5, show_default=True, help="Encoder learning rate.")
@click.option("--head-lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--patience", type=int, default=3, show_default=True)
@click.option("--eval-every", type=int, default=0, help="Dev evaluation every N steps (0=epoch).")
@click.option("--checkpoint-every", type=int, default=50, show_default=True)
@click.option("--stop-after", type=int, default=None,
              help="Return after N steps (state saved); rerun the same command to resume.")
@click.option("--soft-labels", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Teacher logits (.npz from `models soft-labels`) for the sentiment head.")
@click.option("--alpha", type=float, default=0.5, show_default=True,
              help="Weight of the gold-label loss where a teacher label also exists.")
@click.option("--temperature", type=float, default=2.0, show_default=True)
@click.option("--nsp-weight", type=float, default=0.5, show_default=True,
              help="zh: weight of FinNSP's negative flag on P(negative).")
@click.option("--limit", type=int, default=None, help="Cap examples per task (smoke runs).")
@click.option("--threads", type=int, default=None)
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--no-eval", is_flag=True, help="Skip the MANIFEST evaluation at the end.")
@click.option("--train-embeddings", is_flag=True, help="Also update the word embeddings.")
@click.option("--export-best", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Do not train: write the best dev weights so far (of a running or killed "
                   "run with these options) to this folder, calibrated, evaluated, with a card.")
@click.pass_obj
def train_mt_command(settings: Settings, lang: str, base: str, out: Path, epochs: int,
                     max_length: int, batch_size: int, lr: float, head_lr: float, seed: int,
                     patience: int, eval_every: int, checkpoint_every: int,
                     stop_after: int | None, soft_labels: Path | None, alpha: float,
                     temperature: float, nsp_weight: float, limit: int | None,
                     threads: int | None, data: Path | None, no_eval: bool,
                     train_embeddings: bool, export_best: Path | None) -> None:
    """Train one encoder with a sentiment and a topic head (resumes from <out>/_state)."""
    from finsentry.models.train_mt import MTConfig, export_best_mt, train_mt

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = MTConfig(
        lang=lang, base=base, out=out, epochs=epochs, max_length=max_length,
        batch_size=batch_size, lr=lr, head_lr=head_lr, seed=seed, patience=patience,
        eval_every=eval_every, checkpoint_every=checkpoint_every, stop_after=stop_after,
        soft_labels=soft_labels, distill_alpha=alpha, temperature=temperature,
        nsp_weight=nsp_weight, limit=limit, threads=threads or settings.models.threads,
        data_root=_data_root(settings, data), base_cache=settings.models.base_cache,
        evaluate=not no_eval, freeze_embeddings=not train_embeddings,
        command=_command_line(click.get_current_context()))
    metrics = export_best_mt(cfg, export_best) if export_best else train_mt(cfg)
    click.echo(json.dumps(metrics.get("eval", metrics), indent=2, ensure_ascii=False))


@models_group.command("soft-labels")
@click.option("--teacher", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Fine-tuned teacher folder (HF sequence classifier).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .npz to write (a .json with the command goes next to it).")
@click.option("--chunk", type=int, default=512, show_default=True,
              help="Texts per resumable part (sorted by length: one length bucket).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--max-length", type=int, default=128, show_default=True)
@click.option("--backend", type=click.Choice(["onnx", "int8", "torch"]), default="onnx",
              show_default=True, help="onnx = the int8 ONNX Runtime path.")
@click.option("--limit", type=int, default=None, help="Score only the first N texts (smoke).")
@click.option("--stop-after", type=int, default=None, help="Return after N chunks (resumable).")
@click.option("--threads", type=int, default=None)
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.pass_obj
def soft_labels_command(settings: Settings, teacher: Path, out: Path, chunk: int,
                        batch_size: int, max_length: int, backend: str, limit: int | None,
                        stop_after: int | None, threads: int | None, data: Path | None) -> None:
    """Teacher logits for every English training/unlabelled text, keyed by text hash."""
    from finsentry.models import data as D
    from finsentry.models.soft_labels import score

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    texts = D.en_distill_texts(_data_root(settings, data))[:limit]
    meta = score(teacher, texts, out, chunk=chunk, batch_size=batch_size, max_length=max_length,
                 threads=threads or settings.models.threads, backend=backend,
                 cache_dir=settings.models.derived_cache,
                 command=_command_line(click.get_current_context()), stop_after=stop_after)
    click.echo(json.dumps(meta, indent=2))


def _shipped_zh() -> Path | None:
    from finsentry.models.classifier import _shipped_mt
    from finsentry.models.paths import shipped

    return _shipped_mt("zh-multitask") or shipped("zh-sentiment")


@models_group.command("ngram-blend")
@click.option("--encoder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Chinese sentiment or multi-task folder (default: the shipped zh-multitask, "
                   "else zh-sentiment).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Default: models/artefacts/<encoder folder>-ngram-blend.npz")
@click.option("--backend", type=click.Choice(["onnx", "int8", "torch"]), default="onnx",
              show_default=True, help="Encoder runtime (the one the classifier uses).")
@click.option("--features", type=int, default=2 ** 16, show_default=True,
              help="Hashed n-gram buckets (file size ~ 8 bytes each).")
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.pass_obj
def ngram_blend_command(settings: Settings, encoder: Path | None, out: Path | None, backend: str,
                        features: int, data: Path | None) -> None:
    """Fit the char n-gram model, pick the blend weight on dev, report held-out FinFE."""
    from finsentry.models.engine import TextModel
    from finsentry.models.multitask import MultiTaskModel, is_multitask
    from finsentry.models.ngram import ARTEFACTS, blend_file, fit_zh_blend

    path = encoder or _shipped_zh()
    if path is None:
        raise ModelError("no Chinese sentiment model: pass --encoder")
    cls = MultiTaskModel if is_multitask(path) else TextModel
    m = cls(path, device="cpu", backend=backend, max_length=settings.models.max_length,
            threads=settings.models.threads, cache_dir=settings.models.derived_cache)
    report = fit_zh_blend(_data_root(settings, data), m, out or ARTEFACTS / blend_file(m.name),
                          _command_line(click.get_current_context()), features)
    click.echo(json.dumps(report, indent=2, ensure_ascii=False))
