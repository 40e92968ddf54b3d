"""Fine-tuning (full or LoRA), optional distillation, with checkpoint/resume and early stopping.

Python API: `train(TrainConfig(...))`; the CLI `finsentry models train` is a thin wrapper.
The loop is hand-written (not HF Trainer) so that resume after a killed session is exact: the
model, optimiser, scheduler, position in the epoch and early-stopping state live in
`<out>/_state/` and are rewritten every `checkpoint_every` steps. The output folder is a standard
Hugging Face layout (fp16 safetensors, config.json with id2label, tokenizer, README.md card).
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

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    task: str  # "sentiment" | "topic"
    lang: str  # "en" | "zh"
    base: str  # registered base name or a model folder
    out: Path
    lora: bool = False
    epochs: int = 3
    max_length: int = 64
    batch_size: int = 32
    lr: float | None = None  # default: 5e-5 full, 5e-4 LoRA
    weight_decay: float = 0.01
    warmup: float = 0.06
    seed: int = D.SEED
    dev_fraction: float = 0.1
    patience: int = 2
    eval_every: int = 0  # steps between dev evaluations; 0 = once per epoch
    stop_after: int | None = None  # stop (state saved, no model) after N steps in this call
    freeze_embeddings: bool = True  # word embeddings fixed: ~half the optimiser work on CPU
    checkpoint_every: int = 200
    distill_from: Path | None = None
    distill_alpha: float = 0.5  # weight of the hard-label loss when labels exist
    temperature: float = 2.0
    unlabelled_limit: int | None = None
    data_root: Path = Path("../shared/data")
    base_cache: Path | None = None
    limit: int | None = None  # cap on training examples (smoke runs)
    threads: int | None = None
    evaluate: bool = True  # run the MANIFEST evaluation sets at the end when data exists
    command: str = ""
    train_data: D.Split | None = field(default=None, repr=False)  # overrides the data loader
    unlabelled: list[str] | None = field(default=None, repr=False)


def _split_dev(split: D.Split, fraction: float, seed: int) -> tuple[D.Split, D.Split]:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(split.targets)
    strat = split.targets if counts[counts > 0].min() >= 2 else None
    n_dev = max(int(round(len(split) * fraction)), len(set(split.targets)))
    try:
        tx, dx, ty, dy = train_test_split(split.texts, split.targets, test_size=n_dev,
                                          stratify=strat, random_state=seed)
    except ValueError:
        tx, dx, ty, dy = train_test_split(split.texts, split.targets, test_size=n_dev,
                                          random_state=seed)
    return (D.Split(list(tx), list(ty), split.labels, split.name),
            D.Split(list(dx), list(dy), split.labels, split.name + "-dev"))


def _subsample(split: D.Split, limit: int, seed: int) -> D.Split:
    if limit >= len(split):
        return split
    keep = sorted(np.random.default_rng(seed).permutation(len(split))[:limit].tolist())
    return D.Split([split.texts[i] for i in keep], [split.targets[i] for i in keep],
                   split.labels, split.name)


def _batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches of similar-length examples (less padding), deterministic per seed."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(lengths)).tolist()
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for s in range(0, len(perm), chunk):
        part = sorted(perm[s:s + chunk], key=lambda i: lengths[i])
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    order = rng.permutation(len(batches)).tolist()
    return [batches[i] for i in order]


def _lora_targets(model: Any) -> list[str]:
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    for cand in (["query", "value"], ["q", "v"], ["q_proj", "v_proj"]):
        if set(cand) <= names:
            return cand
    raise ModelError("LoRA: no attention projections found in the base model")


def _build_model(cfg: TrainConfig, base_dir: Path, labels: tuple[str, ...]) -> Any:
    """Base + fresh classification head (+ LoRA adapters); word embeddings frozen if asked."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, dtype=torch.float32)
    model.config.finsentry_language = cfg.lang
    if cfg.freeze_embeddings and not cfg.lora:
        model.get_input_embeddings().weight.requires_grad_(False)
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.1, target_modules=_lora_targets(model),
            modules_to_save=["classifier"], task_type="SEQ_CLS"))
    return model


def _dev_scores(model: Any, tok: Any, dev: D.Split, cfg: TrainConfig, device: str) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    pred = batched_logits(model, tok, dev.texts, cfg.max_length, 128, device).argmax(-1)
    return {"dev_accuracy": float(accuracy_score(dev.targets, pred)),
            "dev_macro_f1": float(f1_score(dev.targets, pred, average="macro"))}


def _teacher_probs(cfg: TrainConfig, texts: list[str], state_dir: Path, device: str) -> np.ndarray:
    """Teacher soft labels at temperature T for `texts`, cached in the state folder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cache = state_dir / "teacher_probs.npy"
    if cache.is_file():
        probs = np.load(cache)
        if len(probs) == len(texts):
            return probs
    assert cfg.distill_from is not None
    log.info("teacher %s: scoring %d texts", cfg.distill_from, len(texts))
    tok = AutoTokenizer.from_pretrained(cfg.distill_from)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        cfg.distill_from, dtype=torch.float32).to(device)
    logits = batched_logits(teacher, tok, texts, cfg.max_length, 64, device)
    probs = softmax(logits, cfg.temperature).astype(np.float32)
    np.save(cache, probs)
    return probs


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, save the best dev checkpoint to `cfg.out`, return the metrics written to the card."""
    import torch
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    device = prepare_run(cfg.threads, cfg.seed)
    out = Path(cfg.out)
    state_dir = out / "_state"
    state_dir.mkdir(parents=True, exist_ok=True)
    base_dir = resolve_base(cfg.base, cfg.base_cache)

    full = cfg.train_data or D.training_set(Path(cfg.data_root), cfg.task, cfg.lang)
    if cfg.limit:
        full = _subsample(full, cfg.limit, cfg.seed)
    train_split, dev = _split_dev(full, cfg.dev_fraction, cfg.seed)
    texts, hard = list(train_split.texts), list(train_split.targets)
    soft: np.ndarray | None = None
    if cfg.distill_from:
        extra = cfg.unlabelled
        if extra is None:
            extra = D.unlabelled_texts(Path(cfg.data_root), cfg.lang)
        seen = {t for t in texts} | set(dev.texts)
        extra = [t for t in extra if t not in seen][: cfg.unlabelled_limit]
        texts += extra
        hard += [-1] * len(extra)
        soft = _teacher_probs(cfg, texts, state_dir, device)
    labels = full.labels
    log.info("training %s/%s on %d examples (%d dev) from %s", cfg.task, cfg.lang, len(texts),
             len(dev), base_dir)

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = _build_model(cfg, base_dir, labels).to(device)
    lr = cfg.lr or (5e-4 if cfg.lora else 5e-5)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    lengths = [len(t) for t in texts]
    steps_per_epoch = len(_batches(lengths, cfg.batch_size, cfg.seed))
    total = steps_per_epoch * cfg.epochs
    sched = get_linear_schedule_with_warmup(opt, int(total * cfg.warmup), total)

    loop = ResumableLoop(state_dir, model, opt, sched, device, LoopConfig(
        epochs=cfg.epochs, eval_every=cfg.eval_every, patience=cfg.patience,
        checkpoint_every=cfg.checkpoint_every, stop_after=cfg.stop_after))
    loop.st.update(train_examples=len(train_split), dev_examples=len(dev),
                   unlabelled_examples=hard.count(-1))
    temp = cfg.temperature

    def step(b: list[int]) -> Any:
        enc = tok([texts[i] for i in b], padding=True, truncation=True,
                  max_length=cfg.max_length, return_tensors="pt").to(device)
        logits = model(**enc).logits
        y = torch.tensor([hard[i] for i in b], device=device)
        loss = distill_loss(logits, y, None if soft is None else soft[b], cfg.distill_alpha,
                            temp, device)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    stopped = loop.run(lambda epoch: _batches(lengths, cfg.batch_size, cfg.seed + epoch), step,
                       lambda: _dev_scores(model, tok, dev, cfg, device))
    if stopped is not None:
        return stopped
    st = loop.st
    loop.load_best()
    if cfg.lora:
        model = model.merge_and_unload()
    return finish(model, tok, cfg, _metrics(st), base_dir, device, dev)


def distill_loss(logits: Any, y: Any, soft: np.ndarray | None, alpha: float, temp: float,
                 device: str) -> Any:
    """Hard-label cross-entropy (rows with y >= 0) plus, with teacher probabilities, the
    temperature-scaled KL term; weights alpha / 1 - alpha where both exist, 1 where one does.
    Rows of `soft` that are NaN have no teacher label."""
    import torch

    has = y >= 0
    loss = torch.zeros((), device=device)
    p_t = None if soft is None else torch.as_tensor(np.asarray(soft), dtype=torch.float32,
                                                    device=device)
    has_soft = (torch.zeros_like(has) if p_t is None else ~torch.isnan(p_t[:, 0]))
    if has.any():
        w_hard = torch.where(has_soft, alpha, 1.0)[has]
        ce = torch.nn.functional.cross_entropy(logits[has], y[has], reduction="none")
        loss = loss + (w_hard * ce).sum() / len(y)
    if p_t is not None and has_soft.any():
        logp = torch.log_softmax(logits[has_soft] / temp, dim=-1)
        kl = torch.nn.functional.kl_div(logp, p_t[has_soft], reduction="none").sum(-1)
        w = torch.where(has[has_soft], 1.0 - alpha, 1.0)
        loss = loss + (w * kl).sum() * temp * temp / len(y)
    return loss


def _metrics(st: dict[str, Any]) -> dict[str, Any]:
    keys = ("train_examples", "unlabelled_examples", "dev_examples", "best_step", "history")
    return {**{k: st[k] for k in keys}, "train_seconds": round(st["seconds"], 1)}


def export_best(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Save the best dev weights of a run that is still going (or was killed) to `out`.

    Reads `<cfg.out>/_state`; the card records the steps trained so far.
    """
    import dataclasses

    import torch
    from transformers import AutoTokenizer

    state_dir = Path(cfg.out) / "_state"
    if not (state_dir / "best.pt").is_file():
        raise ModelError(f"run {cfg.out} has no best checkpoint yet")
    st = torch.load(state_dir / "ckpt.pt", map_location="cpu", weights_only=False)["state"]
    if "train_examples" not in st:  # state written before these were recorded
        full = cfg.train_data or D.training_set(Path(cfg.data_root), cfg.task, cfg.lang)
        tr, dev = _split_dev(_subsample(full, cfg.limit, cfg.seed) if cfg.limit else full,
                             cfg.dev_fraction, cfg.seed)
        st.update(train_examples=len(tr), dev_examples=len(dev), unlabelled_examples=0)
    base_dir = resolve_base(cfg.base, cfg.base_cache)
    labels = (cfg.train_data.labels if cfg.train_data else
              D.TOPIC_LABELS if cfg.task == "topic" else D.SENTIMENT_LABELS)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = _build_model(cfg, base_dir, labels)
    model.load_state_dict(torch.load(state_dir / "best.pt", map_location="cpu"))
    if cfg.lora:
        model = model.merge_and_unload()
    Path(out).mkdir(parents=True, exist_ok=True)
    return finish(model, tok, dataclasses.replace(cfg, out=Path(out)), _metrics(st), base_dir,
                  "cpu")


def prior_runs(base_dir: Path) -> list[dict[str, Any]]:
    """The runs that produced `base_dir` when it is itself a finsentry checkpoint (a continued
    training), oldest first, so a card can name the original base model and every command."""
    path = Path(base_dir) / "training.json"
    if not path.is_file():
        return []
    prior = json.loads(path.read_text(encoding="utf-8"))
    conf, met = prior.get("config", {}), prior.get("metrics", {})
    step = {k: conf.get(k) for k in ("base", "command", "epochs", "lr", "max_length", "seed")}
    step.update(best_step=met.get("best_step"), train_seconds=met.get("train_seconds"))
    return [*prior.get("lineage", []), step]


def finish(model: Any, tok: Any, cfg: TrainConfig, metrics: dict[str, Any], base_dir: Path,
           device: str, dev: D.Split | None = None) -> dict[str, Any]:
    """Fit the temperature on dev, evaluate on the MANIFEST sets (when present), save the fp16
    HF folder (temperature in config.json as `finsentry_temperature`) + model card."""
    from finsentry.models.calibration import calibrate
    from finsentry.models.card import EVAL_KEYS, write_card
    from finsentry.models.evaluate import evaluate_model

    out = Path(cfg.out)
    model.eval()
    temperature = 1.0
    if dev is not None and len(dev):
        logits = batched_logits(model, tok, dev.texts, cfg.max_length, 128, device)
        metrics["calibration"] = calibrate(logits, dev.targets)
        temperature = metrics["calibration"]["temperature"]
    model.config.finsentry_temperature = temperature
    if cfg.evaluate and Path(cfg.data_root).is_dir():
        names = D.DEFAULT_EVAL.get((cfg.task, cfg.lang), ())
        report = evaluate_model(model, tok, names, Path(cfg.data_root), cfg.max_length, device,
                                temperature)
        metrics["eval"] = {k: {m: v[m] for m in EVAL_KEYS if m in v} for k, v in report.items()}
    model.half().save_pretrained(out)
    tok.save_pretrained(out)
    cfgd = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
            if k not in ("train_data", "unlabelled")}
    lineage = prior_runs(base_dir)
    (out / "training.json").write_text(json.dumps(
        {"config": cfgd, "metrics": metrics, "lineage": lineage}, indent=2, default=str))
    write_card(out, cfg, metrics, base_dir, lineage)
    return metrics
