"""Joint training of one encoder with several heads (sentiment + topic), resumable.

`finsentry models train-mt` is the CLI. Every head reads the same mean-pooled encoder output,
so a document costs one forward pass at inference. Per language:

- en: sentiment on the English sentiment training set, topic on the topic tweets; with
  `soft_labels` (teacher logits keyed by text hash, models/soft_labels.py) the sentiment head
  also learns from the teacher on every text it scored, the topic tweets included
  (distillation: KL at temperature T, weight 1 - alpha where a gold label exists).
- zh: sentiment on FinFE (minus the held-out slice), topic on FinNL (first subject label), and
  FinNSP's negative flag as extra signal on the sentiment head: binary cross-entropy of
  P(negative) against the flag, weight `nsp_weight`.

The epoch loop is `models/loop.py` (shared with `train.py`): state in `<out>/_state/`, rerun the
same command to resume. The best step is chosen on dev only (mean macro F1 over the heads).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finsentry.errors import ModelError
from finsentry.models import data as D
from finsentry.models.bases import resolve_base
from finsentry.models.loop import LoopConfig, ResumableLoop, prepare_run
from finsentry.models.runtime import batched_logits, softmax
from finsentry.models.train import _batches, _split_dev, _subsample, distill_loss

log = logging.getLogger(__name__)
EVAL = {("en", "sentiment"): ("fpb50", "fpball", "tfns"), ("en", "topic"): ("topic",),
        ("zh", "sentiment"): ("finfe",), ("zh", "topic"): ("finnl",)}


@dataclass
class MTConfig:
    lang: str  # "en" | "zh"
    base: str  # registered base name or a model folder
    out: Path
    epochs: int = 2
    max_length: int = 64
    batch_size: int = 32
    lr: float = 5e-5  # encoder
    head_lr: float = 1e-3  # fresh heads learn faster
    weight_decay: float = 0.01
    warmup: float = 0.06
    seed: int = D.SEED
    dev_fraction: float = 0.1
    patience: int = 3
    eval_every: int = 0
    stop_after: int | None = None
    checkpoint_every: int = 50
    freeze_embeddings: bool = True
    soft_labels: Path | None = None
    distill_alpha: float = 0.5
    temperature: float = 2.0
    nsp_weight: float = 0.5
    data_root: Path = Path("../shared/data")
    base_cache: Path | None = None
    limit: int | None = None  # cap per task (smoke runs)
    threads: int | None = None
    evaluate: bool = True
    command: str = ""
    tasks: dict[str, D.Split] | None = field(default=None, repr=False)  # head -> train data
    nsp: D.Split | None = field(default=None, repr=False)
    extra_texts: list[str] | None = field(default=None, repr=False)


def _task_data(cfg: MTConfig) -> tuple[dict[str, D.Split], D.Split | None, list[str]]:
    root = Path(cfg.data_root)
    tasks = cfg.tasks or {"sentiment": D.training_set(root, "sentiment", cfg.lang),
                          "topic": D.training_set(root, "topic", cfg.lang)}
    nsp = cfg.nsp
    if nsp is None and cfg.tasks is None and cfg.lang == "zh" and cfg.nsp_weight > 0:
        nsp = D.finnsp(root)
    extra = cfg.extra_texts
    if extra is None:
        extra = D.en_distill_texts(root) if cfg.soft_labels and cfg.lang == "en" else []
    if cfg.limit:
        tasks = {h: _subsample(s, cfg.limit, cfg.seed) for h, s in tasks.items()}
        nsp = _subsample(nsp, cfg.limit, cfg.seed) if nsp is not None else None
        extra = extra[: cfg.limit]
    return tasks, nsp, extra


@dataclass
class Examples:
    texts: list[str]
    targets: dict[str, list[int]]  # head -> label or -1
    nsp: list[int]  # FinNSP flag or -1
    soft: np.ndarray | None  # teacher probabilities at T for the sentiment head, NaN = none


def build_examples(cfg: MTConfig, train: dict[str, D.Split], nsp: D.Split | None,
                   extra: list[str], dev_texts: set[str]) -> Examples:
    heads = list(train)
    ex = Examples([], {h: [] for h in heads}, [], None)

    def add(text: str, head: str | None = None, y: int = -1, flag: int = -1) -> None:
        ex.texts.append(text)
        for h in heads:
            ex.targets[h].append(y if h == head else -1)
        ex.nsp.append(flag)

    for head, split in train.items():
        for text, y in zip(split.texts, split.targets, strict=True):
            add(text, head, y)
    if nsp is not None:
        for text, flag in zip(nsp.texts, nsp.targets, strict=True):
            add(text, flag=flag)
    have = {D._norm(t) for t in ex.texts} | {D._norm(t) for t in dev_texts}
    for text in extra:
        if D._norm(text) not in have:
            have.add(D._norm(text))
            add(text)
    if cfg.soft_labels:
        from finsentry.models.soft_labels import SoftLabels

        logits = SoftLabels.load(Path(cfg.soft_labels)).lookup(ex.texts)
        ex.soft = softmax(logits, cfg.temperature).astype(np.float32)  # NaN rows stay NaN
        log.info("teacher soft labels for %d of %d texts", int((~np.isnan(logits[:, 0])).sum()),
                 len(ex.texts))
    return ex


def _build_net(cfg: MTConfig, base_dir: Path, labels: dict[str, tuple[str, ...]]) -> Any:
    from finsentry.models.multitask import (
        HEADS_FILE,
        build_net,
        head_weights,
        load_encoder,
        read_spec,
    )

    encoder = load_encoder(base_dir)
    if cfg.freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    net = build_net(encoder, {h: len(lab) for h, lab in labels.items()})
    if (base_dir / HEADS_FILE).is_file():  # a multi-task checkpoint: continue from its heads
        spec, weights = read_spec(base_dir)["heads"], head_weights(base_dir)
        for h, lab in labels.items():
            if h in spec and tuple(spec[h]["labels"]) == tuple(lab):
                net.heads[h].load_state_dict(weights[h])
                log.info("head %s initialised from %s", h, base_dir)
    return net


def _head_logits(net: Any, tok: Any, texts: list[str], labels: dict[str, tuple[str, ...]],
                 cfg: MTConfig, device: str) -> dict[str, np.ndarray]:
    raw = batched_logits(net, tok, texts, cfg.max_length, 128, device)
    out, col = {}, 0
    for h, lab in labels.items():
        out[h] = raw[:, col:col + len(lab)] if len(texts) else np.zeros((0, len(lab)))
        col += len(lab)
    return out


def train_mt(cfg: MTConfig) -> dict[str, Any]:
    """Train jointly, save the best dev step to `cfg.out` (encoder folder + heads.safetensors)."""
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    device = prepare_run(cfg.threads, cfg.seed)
    out = Path(cfg.out)
    state_dir = out / "_state"
    base_dir = resolve_base(cfg.base, cfg.base_cache)
    tasks, nsp, extra = _task_data(cfg)
    labels = {h: s.labels for h, s in tasks.items()}
    splits = {h: _split_dev(s, cfg.dev_fraction, cfg.seed) for h, s in tasks.items()}
    dev = {h: d for h, (_, d) in splits.items()}
    dev_texts = {t for d in dev.values() for t in d.texts}
    ex = build_examples(cfg, {h: tr for h, (tr, _) in splits.items()}, nsp, extra, dev_texts)
    log.info("multi-task %s: %d training texts (%s), dev %s, from %s", cfg.lang, len(ex.texts),
             {h: len(tr) for h, (tr, _) in splits.items()}, {h: len(d) for h, d in dev.items()},
             base_dir)

    tok = AutoTokenizer.from_pretrained(base_dir)
    net = _build_net(cfg, base_dir, labels).to(device)
    enc_params = [p for p in net.encoder.parameters() if p.requires_grad]
    head_params = list(net.heads.parameters())
    opt = torch.optim.AdamW([{"params": enc_params, "lr": cfg.lr},
                             {"params": head_params, "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    lengths = [len(t) for t in ex.texts]
    total = len(_batches(lengths, cfg.batch_size, cfg.seed)) * cfg.epochs
    sched = get_linear_schedule_with_warmup(opt, int(total * cfg.warmup), total)
    loop = ResumableLoop(state_dir, net, opt, sched, device, LoopConfig(
        epochs=cfg.epochs, eval_every=cfg.eval_every, patience=cfg.patience,
        checkpoint_every=cfg.checkpoint_every, stop_after=cfg.stop_after, select="dev_score"))
    loop.st.update(train_examples={h: len(tr) for h, (tr, _) in splits.items()},
                   dev_examples={h: len(d) for h, d in dev.items()},
                   nsp_examples=len(nsp) if nsp is not None else 0, texts=len(ex.texts),
                   teacher_scored=0 if ex.soft is None else int((~np.isnan(ex.soft[:, 0])).sum()))
    heads = list(labels)
    params = enc_params + head_params

    def step(b: list[int]) -> float:
        enc = tok([ex.texts[i] for i in b], padding=True, truncation=True,
                  max_length=cfg.max_length, return_tensors="pt").to(device)
        outs = net(**enc)
        loss = torch.zeros((), device=device)
        for h, logits in zip(heads, outs, strict=True):
            y = torch.tensor([ex.targets[h][i] for i in b], device=device)
            soft = ex.soft[b] if (h == "sentiment" and ex.soft is not None) else None
            if (y >= 0).any() or (soft is not None and not np.isnan(soft[:, 0]).all()):
                loss = loss + distill_loss(logits, y, soft, cfg.distill_alpha, cfg.temperature,
                                           device)
        flag = torch.tensor([ex.nsp[i] for i in b], device=device)
        if (flag >= 0).any():
            p_neg = torch.softmax(outs[heads.index("sentiment")][flag >= 0], -1)[:, 0]
            bce = torch.nn.functional.binary_cross_entropy(
                p_neg.clamp(1e-6, 1 - 1e-6), flag[flag >= 0].float(), reduction="sum")
            loss = loss + cfg.nsp_weight * bce / len(b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.item())

    def dev_eval() -> dict[str, float]:
        scores: dict[str, float] = {}
        for h, d in dev.items():
            pred = _head_logits(net, tok, d.texts, labels, cfg, device)[h].argmax(-1)
            scores[f"{h}_dev_accuracy"] = float(accuracy_score(d.targets, pred))
            scores[f"{h}_dev_macro_f1"] = float(f1_score(d.targets, pred, average="macro"))
        scores["dev_score"] = float(np.mean([scores[f"{h}_dev_macro_f1"] for h in dev]))
        return scores

    stopped = loop.run(lambda e: _batches(lengths, cfg.batch_size, cfg.seed + e), step, dev_eval)
    if stopped is not None:
        return stopped
    loop.load_best()
    keys = ("train_examples", "dev_examples", "nsp_examples", "texts", "teacher_scored",
            "best_step", "history")
    metrics = {**{k: loop.st.get(k) for k in keys}, "train_seconds": round(loop.st["seconds"], 1)}
    return finish_mt(net, tok, cfg, labels, dev, metrics, base_dir, device)


def finish_mt(net: Any, tok: Any, cfg: MTConfig, labels: dict[str, tuple[str, ...]],
              dev: dict[str, D.Split], metrics: dict[str, Any], base_dir: Path,
              device: str) -> dict[str, Any]:
    """Temperatures per head on dev, MANIFEST evaluation per head, save folder + card."""
    from finsentry.models.calibration import calibrate
    from finsentry.models.card import EVAL_KEYS, write_mt_card
    from finsentry.models.evaluate import evaluate
    from finsentry.models.multitask import save_net

    net.eval()
    temps: dict[str, float] = {}
    metrics["calibration"] = {}
    for h, d in dev.items():
        logits = _head_logits(net, tok, d.texts, labels, cfg, device)[h]
        cal = calibrate(logits, d.targets) if len(d) else {"temperature": 1.0}
        temps[h] = cal["temperature"]
        metrics["calibration"][h] = cal
    metrics["eval"] = {}
    if cfg.evaluate and Path(cfg.data_root).is_dir():
        for h in labels:
            def predict(texts: Any, h: str = h) -> np.ndarray:
                return softmax(_head_logits(net, tok, list(texts), labels, cfg, device)[h],
                               temps[h])

            report = evaluate(predict, EVAL.get((cfg.lang, h), ()), Path(cfg.data_root))
            metrics["eval"][h] = {k: {m: v[m] for m in EVAL_KEYS if m in v}
                                  for k, v in report.items()}
    out = Path(cfg.out)
    save_net(net, tok, out, labels, temps, cfg.lang)
    conf = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
            if k not in ("tasks", "nsp", "extra_texts")}
    (out / "training.json").write_text(json.dumps({"config": conf, "metrics": metrics},
                                                  indent=2, default=str))
    write_mt_card(out, cfg, metrics, base_dir, labels)
    return metrics


def export_best_mt(cfg: MTConfig, out: Path) -> dict[str, Any]:
    """Save the best dev weights of a run that is still going (or was killed) to `out`."""
    import dataclasses

    import torch
    from transformers import AutoTokenizer

    state_dir = Path(cfg.out) / "_state"
    if not (state_dir / "best.pt").is_file():
        raise ModelError(f"run {cfg.out} has no best checkpoint yet")
    st = torch.load(state_dir / "ckpt.pt", map_location="cpu", weights_only=False)["state"]
    base_dir = resolve_base(cfg.base, cfg.base_cache)
    tasks, _, _ = _task_data(cfg)
    labels = {h: s.labels for h, s in tasks.items()}
    dev = {h: _split_dev(s, cfg.dev_fraction, cfg.seed)[1] for h, s in tasks.items()}
    net = _build_net(cfg, base_dir, labels)
    net.load_state_dict(torch.load(state_dir / "best.pt", map_location="cpu"))
    keys = ("train_examples", "dev_examples", "nsp_examples", "texts", "teacher_scored",
            "best_step", "history")
    metrics = {**{k: st.get(k) for k in keys}, "train_seconds": round(st["seconds"], 1),
               "unfinished_at_step": st["global_step"]}
    tok = AutoTokenizer.from_pretrained(base_dir)
    return finish_mt(net, tok, dataclasses.replace(cfg, out=Path(out)), labels, dev, metrics,
                     base_dir, "cpu")
