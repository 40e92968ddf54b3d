"""Benchmark of the shipped classifiers (not a test): accuracy and documents/s in one run.

    python bench/models.py [--threads 2] [--data ../shared/data] [--skip-accuracy] [--smoke]

Prints one Markdown table per part:
1. accuracy (with its 95% bootstrap interval over the test set) and expected calibration error
   of each shipped model on the MANIFEST.md protocol, fp32 torch vs the int8 fast paths (torch
   dynamic int8, ONNX Runtime int8), so the quantisation loss is visible; multi-task checkpoints
   per head; `--teacher DIR` adds a teacher's rows beside the student's;
2. documents/s at batch 32/128 and max length 64/128 for each CPU backend of the English
   sentiment model, next to a BERT-base-size model (FinBERT's size, randomly initialised from a
   config, fp32 torch) on the same inputs and threads, with the ratio;
3. English documents/s of the multi-task default (one pass, both heads) against today's
   two-model default (sentiment pass + topic pass), same batch, length, threads; without a
   shipped en-multitask the encoder is MiniLM with untrained heads (same cost per pass);
4. the default classifier's `predict_batch` at the worker's batch (64) on the pipeline's mixed
   English/Chinese sample, with the ONNX threads as lanes (the default: one slice of each inner
   batch per thread) and as ONNX Runtime's operator threads, alternating pass by pass;
5. on a CUDA machine: bf16 documents/s at batch 256/1024.
Inputs for the speed table are long enough to fill `max length`, so every row does the work its
label says.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import Table, emit

from finsentry.models.calibration import format_ci
from finsentry.models.engine import TextModel
from finsentry.models.evaluate import evaluate
from finsentry.models.multitask import MultiTaskModel, is_multitask
from finsentry.models.ngram import Blend, load_blend, sentiment_probs
from finsentry.models.paths import CHECKPOINTS, PROJECT_ROOT

SETS = {"en-sentiment": ["fpb50", "fpball", "tfns"], "en-topic": ["topic"],
        "zh-sentiment": ["finfe"], "en-multitask": ["fpb50", "fpball", "tfns", "topic"],
        "zh-multitask": ["finfe", "finnl"]}
HEAD_OF = {"fpb50": "sentiment", "fpball": "sentiment", "tfns": "sentiment", "finfe": "sentiment",
           "topic": "topic", "finnl": "topic"}
FILLER = ("Finnish metal products company Componenta Oyj said net sales rose to EUR 91.4 "
          "million in the third quarter of 2010 from EUR 60.0 million a year earlier, while "
          "operating profit improved and the order book grew in all divisions . ")


def _load(path: Path, **kw: object) -> TextModel:
    return (MultiTaskModel if is_multitask(path) else TextModel)(path, **kw)


def accuracy_table(data: Path, threads: int, cache: Path,
                   teacher: Path | None = None, only: list[str] | None = None) -> list[str]:
    rows = ["| model | backend | set | n | accuracy [95% CI] | macro F1 | weighted F1 | ECE |",
            "|---|---|---|---:|---:|---:|---:|---:|"]
    models = {name: CHECKPOINTS / name for name in SETS if not only or name in only}
    if teacher is not None:
        models[f"teacher {teacher.name}"] = teacher
    for name, path in models.items():
        sets = SETS.get(name, SETS["en-sentiment"])
        if not (path / "config.json").is_file():
            rows.append(f"| {name} | - | not shipped yet | | | | | |")
            continue
        for backend in ("torch", "int8", "onnx"):
            m = _load(path, device="cpu", backend=backend, max_length=128, batch_size=64,
                      threads=threads, cache_dir=cache)
            t0 = time.perf_counter()
            report = {}
            for s in sets:
                head = HEAD_OF[s] if s in HEAD_OF and HEAD_OF[s] in m.heads else None
                predict = (lambda texts, h=head, m=m: m.head_probs(texts)[h]) if head else m.probs
                report.update(evaluate(predict, [s], data))
            blend = load_blend(m) if name.startswith("zh-") else None
            if blend is not None:  # what the default classifier serves for Chinese text
                def served(t: list[str], m: TextModel = m, b: Blend = blend) -> np.ndarray:
                    return b.blend(sentiment_probs(m, t), t)

                report.update({f"finfe (+ n-gram blend, w={blend.weight})": r
                               for r in evaluate(served, ["finfe"], data).values()})
            took = time.perf_counter() - t0
            for s, r in report.items():
                rows.append(f"| {name} | {backend} ({took:.0f} s) | {s} | {r['n']} | "
                            f"{format_ci(r['accuracy'], r['accuracy_ci'])} | "
                            f"{r['macro_f1']:.4f} | {r['weighted_f1']:.4f} | {r['ece']:.4f} |")
    return rows


def baseline_table(data: Path) -> list[str]:
    """Char n-gram TF-IDF + logistic regression on the Chinese sets (the reference to beat)."""
    from finsentry.models import data as D
    from finsentry.models.evaluate import score
    from finsentry.models.ngram import baseline

    rows = ["| baseline | set | n | accuracy [95% CI] | macro F1 | ECE |",
            "|---|---|---:|---:|---:|---:|"]
    for name, (train, test) in (("finfe", D.finfe(data)), ("finnl", D.finnl(data))):
        r = score(test, baseline(train.texts, train.targets, test.texts))
        rows.append(f"| TF-IDF char 1-3 + LR | {name} | {r['n']} | "
                    f"{format_ci(r['accuracy'], r['accuracy_ci'])} | {r['macro_f1']:.4f} | "
                    f"{r['ece']:.4f} |")
    return rows


def multitask_stand_in(tmp: Path) -> Path:
    """MiniLM with untrained sentiment (3) and topic (20) heads: the en-multitask cost."""
    from transformers import AutoModel, AutoTokenizer

    from finsentry.models.bases import resolve_base
    from finsentry.models.data import TOPIC_LABELS
    from finsentry.models.multitask import build_net, save_net

    base = resolve_base("minilm-l6")
    net = build_net(AutoModel.from_pretrained(base), {"sentiment": 3, "topic": 20})
    save_net(net, AutoTokenizer.from_pretrained(base), tmp / "en-multitask-standin",
             {"sentiment": ("negative", "neutral", "positive"), "topic": TOPIC_LABELS}, {}, "en")
    return tmp / "en-multitask-standin"


def multitask_speed_table(threads: int, cache: Path, n_batches: int) -> list[str]:
    """docs/s of one multi-task pass vs the two-model default (sentiment pass + topic pass)."""
    if not (CHECKPOINTS / "en-topic" / "config.json").is_file():
        return ["no en-topic checkpoint: two-model default not measurable"]
    rows = ["| backend | batch | max len | two-model docs/s | multi-task docs/s | ratio |",
            "|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        mt_path = CHECKPOINTS / "en-multitask"
        if not is_multitask(mt_path):
            mt_path = multitask_stand_in(Path(tmp))
        for backend in ("torch", "onnx"):
            kw = {"device": "cpu", "backend": backend, "threads": threads, "cache_dir": cache}
            sent = TextModel(CHECKPOINTS / "en-sentiment", **kw)
            top = TextModel(CHECKPOINTS / "en-topic", **kw)
            mt = MultiTaskModel(mt_path, **kw)
            for b in (32, 128):
                for L in (64, 128):
                    two = 1.0 / (1.0 / docs_per_s(sent, b, L, n_batches)
                                 + 1.0 / docs_per_s(top, b, L, n_batches))
                    one = docs_per_s(mt, b, L, n_batches, both=True)
                    rows.append(f"| {backend} | {b} | {L} | {two:.1f} | {one:.1f} | "
                                f"{one / two:.2f}x |")
    return rows


def bert_base_folder(tmp: Path) -> Path:
    """A randomly initialised BERT-base (110M) classifier folder with the uncased BERT vocab."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from finsentry.models.bases import resolve_base

    torch.manual_seed(0)
    config = BertConfig()  # bert-base-uncased sizes: 12 layers, 768 hidden, 110M parameters
    config.num_labels = 3
    model = BertForSequenceClassification(config)
    model.save_pretrained(tmp)
    src = resolve_base("minilm-l6")  # same bert-base-uncased WordPiece vocabulary
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / f).is_file():
            shutil.copy(src / f, tmp / f)
    return tmp


def docs_per_s(m: TextModel, batch: int, length: int, n_batches: int,
               both: bool = False) -> float:
    m.batch_size, m.max_length = batch, length
    texts = [f"{i} " + FILLER * 3 for i in range(batch * n_batches)]
    run = m.head_probs if both else m.probs
    run(texts[:batch])  # warm-up
    t0 = time.perf_counter()
    run(texts)
    return len(texts) / (time.perf_counter() - t0)


def speed_table(threads: int, cache: Path, n_batches: int,
                grid: tuple[tuple[int, int], ...] = ((32, 64), (32, 128), (128, 64), (128, 128)),
                backends: tuple[str, ...] = ("torch", "int8", "onnx")) -> list[str]:
    rows = ["| model | backend | batch | max len | docs/s | BERT-base fp32 docs/s | ratio |",
            "|---|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        base = TextModel(bert_base_folder(Path(tmp)), device="cpu", backend="torch",
                         threads=threads)
        ref = {(b, L): docs_per_s(base, b, L, n_batches) for b, L in grid}
    for name in ("en-sentiment", "zh-sentiment"):
        path = CHECKPOINTS / name
        if not (path / "config.json").is_file():
            continue
        for backend in backends:
            m = TextModel(path, device="cpu", backend=backend, threads=threads, cache_dir=cache)
            for (b, L), r in ref.items():
                v = docs_per_s(m, b, L, n_batches)
                label = {"torch": "fp32 torch", "int8": "torch dynamic int8",
                         "onnx": "ONNX Runtime int8 (default)"}[backend]
                rows.append(f"| {name} | {label} | {b} | {L} | {v:.1f} | {r:.1f} | "
                            f"{v / r:.1f}x |")
    return rows


def parallel_table(threads: int, cache: Path, docs: int, rounds: int) -> Table:
    """predict_batch docs/s and CPU with lanes vs operator threads, in alternating passes
    (the load on a shared machine drifts between passes; each round's ratio is its own)."""
    import statistics

    from _bare import Bare

    from finsentry.streams.sample import generate

    texts = [d.classify_text for d in generate(docs, seed=11).documents]
    bares = {mode: Bare(texts, 64, threads, mode, parallel=mode, derived_cache=cache)
             for mode in ("lanes", "operators")}
    for _ in range(rounds):
        for bare in bares.values():
            bare.run()
    table = Table(f"ONNX threads as lanes vs operator threads ({threads} threads)",
                  ["parallel", "docs/s (median)", "CPU-s/1000 docs (median)",
                   "lanes / operators, every round"])
    ratios = sorted(a[0] / b[0] for a, b in zip(bares["lanes"].runs, bares["operators"].runs,
                                                strict=True))
    for mode, bare in bares.items():
        table.add(mode, statistics.median(r for r, _ in bare.runs),
                  statistics.median(c for _, c in bare.runs),
                  " ".join(f"{r:.2f}" for r in ratios) if mode == "lanes" else "-")
    table.notes.append(f"The default classifier's predict_batch at batch 64 over {len(texts)} "
                       "documents of the pipeline's sample (English and Chinese), "
                       f"{rounds} alternating passes per mode (models.parallel).")
    return table


def gpu_table(n_batches: int) -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return ["no CUDA device here: GPU figures not measured"]
    rows = ["| model | dtype | batch | max len | docs/s |", "|---|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        models = {"BERT-base (random)": bert_base_folder(Path(tmp))}
        models.update({n: CHECKPOINTS / n for n in SETS if (CHECKPOINTS / n).is_dir()})
        for name, path in models.items():
            m = TextModel(path, device="cuda", backend="torch")
            for b in (256, 1024):
                for L in (64, 128):
                    torch.cuda.synchronize()
                    v = docs_per_s(m, b, L, n_batches)
                    rows.append(f"| {name} | bf16 | {b} | {L} | {v:.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    ap.add_argument("--batches", type=int, default=2, help="timed batches per speed cell")
    ap.add_argument("--rounds", type=int, default=6,
                    help="alternating passes per mode in the lanes/operators table")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--teacher", type=Path, default=None,
                    help="an English sentiment teacher folder to report beside the students")
    ap.add_argument("--models", default=None,
                    help="comma-separated shipped models for the accuracy table (default: all)")
    ap.add_argument("--results", type=Path, default=None, help="results folder")
    ap.add_argument("--smoke", action="store_true",
                    help="no accuracy, one speed cell, ONNX only, one batch")
    args = ap.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="finsentry-bench-"))
    tables: list[Table] = []
    try:
        if args.smoke:
            speed = speed_table(args.threads, cache, 1, grid=((8, 32),), backends=("onnx",))
        else:
            if not args.skip_accuracy:
                title = f"Accuracy ({args.threads} threads)"
                if args.data.is_dir():
                    tables.append(Table.from_markdown(
                        title, accuracy_table(args.data, args.threads, cache, args.teacher,
                                       args.models.split(",") if args.models else None)))
                    tables.append(Table.from_markdown("Chinese n-gram baselines",
                                                      baseline_table(args.data)))
                else:
                    tables.append(Table(title, ["note"],
                                        [[f"no data at {args.data}: not measured"]]))
            speed = speed_table(args.threads, cache, args.batches)
        tables.append(Table.from_markdown(f"Documents/s ({args.threads} threads)", speed))
        tables.append(parallel_table(args.threads, cache, 128 if args.smoke else 2000,
                                     1 if args.smoke else args.rounds))
        if not args.smoke:
            tables.append(Table.from_markdown(
                f"Multi-task vs two-model documents/s ({args.threads} threads)",
                multitask_speed_table(args.threads, cache, args.batches)))
            tables.append(Table.from_markdown("GPU documents/s", gpu_table(args.batches)))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    emit("models", tables, out_dir=args.results, meta={"threads": args.threads})


if __name__ == "__main__":
    main()
