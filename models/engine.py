"""The inference engine: one sequence-classification folder, ready to run fast on CPU or GPU.

`TextModel.probs(texts)` classifies many texts in one call: sorted by length (less padding),
cut into inner batches, run under `torch.inference_mode`, restored to input order. Backends:

- ``torch``: fp32 on CPU; bf16 (fp16 where bf16 is unsupported) on CUDA.
- ``int8``: torch dynamic int8 quantisation of the Linear layers, built at load time.
- ``onnx``: ONNX export + ONNX Runtime dynamic int8, built once from the committed fp16
  checkpoint and cached under `derived_cache` keyed by the weights' hash.
- ``auto``: CUDA -> torch; CPU -> onnx (measured fastest at equal accuracy, see bench/models.py).

The int8 paths quantise activations with one scale per batch, so a text's probabilities move
with its batch-mates: a few hundredths for the 3-way sentiment heads, up to about 0.16 for the
top class of the 20-way topic head on an ambiguous text that shares a batch with texts of very
different length (length sorting keeps batch-mates alike in real streams). fp32 results are
batch-invariant to float tolerance. One lock serialises calls: a fast tokenizer is not meant
to be driven from several threads at once, and one call already uses every core.

On CPU the ONNX backend spends its threads in *lanes* (`parallel="lanes"`, the default): each
inner batch is cut into one interleaved slice per thread, and each slice runs whole on its own
thread (its own tokenizer, the shared session at one intra-op thread). ONNX Runtime's own
parallelism (`parallel="operators"`) splits every operator across the threads instead and
waits for the slowest at each of the hundreds of operators per pass; lanes meet once per
call. Measured on 2 cores: 1.02-1.18x the documents/s at 8% less CPU (docs/performance.md,
item 14).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finsentry.errors import ModelError
from finsentry.models.runtime import length_order, pick_device, softmax

log = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "int8", "onnx")
PARALLEL = ("lanes", "operators")
_ANNOUNCED: dict[str, bool] = {}


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence library noise while loading/exporting: torch TracerWarnings, onnxruntime's
    quantisation hints (logged on the root logger), transformers' weight-loading bars."""
    loggers = [logging.getLogger(n) for n in ("", "onnxruntime", "transformers", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(max(lg.level, logging.ERROR))
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
            if bars:
                hf_logging.enable_progress_bar()


@dataclass(frozen=True)
class Head:
    """One output of a model: its labels and the softmax temperature fitted on dev."""

    labels: tuple[str, ...]
    temperature: float = 1.0


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask; cgroup quotas are not read)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def weights_hash(path: Path) -> str:
    """Short content hash of a model folder's config and weights (the model version)."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "heads.safetensors"):
        f = path / name
        if f.is_file():
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()[:12]


class TextModel:
    """A loaded classifier folder; `probs` is safe to call from any thread."""

    def __init__(self, path: Path, *, device: str = "auto", backend: str = "auto",
                 max_length: int = 128, batch_size: int = 64, threads: int | None = None,
                 cache_dir: Path | None = None, parallel: str = "lanes") -> None:
        import torch
        from transformers import AutoConfig, AutoTokenizer

        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise ModelError(f"model folder {self.path} has no config.json")
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r} for model {self.path}")
        self.device = pick_device(device)
        if backend == "auto":
            backend = "torch" if self.device == "cuda" else "onnx"
        if self.device == "cuda" and backend != "torch":
            raise ModelError(f"backend {backend!r} is CPU-only (model {self.path})")
        if parallel not in PARALLEL:
            raise ModelError(f"unknown parallel mode {parallel!r} for model {self.path}")
        self.backend = backend
        self.max_length = max_length
        self.batch_size = batch_size
        self.version = weights_hash(self.path)
        self.name = self.path.name
        config = AutoConfig.from_pretrained(self.path)
        self.language: str = str(getattr(config, "finsentry_language", "") or
                                 ("zh" if self.path.name.startswith("zh") else "en"))
        self.heads: dict[str, Head] = self._read_heads(config)
        self.labels: tuple[str, ...] = next(iter(self.heads.values())).labels
        self.output_names = list(self.heads)
        self._lock = threading.Lock()
        if threads:
            torch.set_num_threads(threads)
        self._session: Any = None
        self._model: Any = None
        # lanes: one slice of each inner batch per thread, each with a tokenizer of its own
        # (copies: no second read of the tokenizer files)
        lanes = backend == "onnx" and parallel == "lanes"
        self.lanes = (threads or usable_cores()) if lanes else 1
        tok = AutoTokenizer.from_pretrained(self.path)
        self._toks = [tok, *(copy.deepcopy(tok) for _ in range(self.lanes - 1))]
        self._pool = (ThreadPoolExecutor(self.lanes - 1, thread_name_prefix="finsentry-lane")
                      if self.lanes > 1 else None)
        if backend == "onnx":
            self._session = self._onnx_session(cache_dir, 1 if self.lanes > 1 else threads)
        else:
            self._model = self._torch_model(backend)

    # --- building the runtimes -------------------------------------------------------------
    def _read_heads(self, config: Any) -> dict[str, Head]:
        """A sequence-classification folder has one head, 'logits' (temperature in config)."""
        labels = tuple(config.id2label[i] for i in range(config.num_labels))
        return {"logits": Head(labels, float(getattr(config, "finsentry_temperature", 1.0)))}

    def _load_torch(self) -> Any:
        import torch
        from transformers import AutoModelForSequenceClassification

        with quiet_libraries():
            return AutoModelForSequenceClassification.from_pretrained(self.path,
                                                                      dtype=torch.float32)

    def _torch_model(self, backend: str) -> Any:
        import torch

        model = self._load_torch()
        model.eval()
        if self.device == "cuda":
            half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return model.to(device="cuda", dtype=half)
        if backend == "int8":
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8)
        return model

    def _onnx_session(self, cache_dir: Path | None, threads: int | None) -> Any:
        import onnxruntime as ort

        cache = (cache_dir or Path("~/.cache/finsentry/derived")).expanduser()
        target = cache / f"{self.name}-{self.version}" / "model.int8-pc7.onnx"
        if not target.is_file():
            self._export_onnx(target)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No spin-waiting: ORT's pool threads otherwise spin between operators, which on cores
        # shared with the pipeline's own threads, the broker and ClickHouse (or other jobs)
        # burns the CPU the sibling it waits for needs. Measured on the shared 2-core dev box:
        # bare predict_batch 18-23 -> 39-45 docs/s, 7-9.5 -> 3.8-4.2 CPU-s per 1000 docs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(target), opts, providers=["CPUExecutionProvider"])
        self._onnx_inputs = [i.name for i in session.get_inputs()]
        return session

    def _export_onnx(self, target: Path) -> None:
        """fp16 checkpoint -> fp32 ONNX -> dynamic int8 ONNX (written atomically)."""
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        log.info("building the int8 ONNX form of %s (once) in %s", self.path, target.parent)
        if not _ANNOUNCED.get("int8"):
            _ANNOUNCED["int8"] = True
            print("building the int8 models once (first run only; cached in "
                  f"{target.parent.parent})", file=sys.stderr, flush=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        model = self._torch_model("torch")
        enc = self._toks[0](["a short example", "another example text"], padding=True,
                        return_tensors="pt")
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        unique = f"{os.getpid()}-{threading.get_ident()}"  # concurrent first loads don't clash
        fp32 = target.with_name(f"model.fp32.{unique}.onnx.tmp")
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        try:
            with torch.inference_mode(), quiet_libraries():
                out_axes = {n: {0: "batch"} for n in self.output_names}
                torch.onnx.export(model, (dict(enc.items()),), str(fp32), input_names=names,
                                  output_names=self.output_names,
                                  dynamic_axes={**axes, **out_axes},
                                  opset_version=17, dynamo=False)
            tmp = target.with_name(f"model.int8.{unique}.onnx.tmp")
            # Per-channel weight scales cut en-topic's int8 loss from 1.0 to under 0.3 points
            # at about the same speed; 7-bit weights (reduce_range) avoid the u8s8 saturation
            # that CPUs without VNNI suffer (onnxruntime's quantisation guide).
            with quiet_libraries():
                quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8,
                                 per_channel=True, reduce_range=True)
            tmp.replace(target)
        except Exception as exc:  # export problems are environment problems: name the model
            raise ModelError(f"could not build the ONNX int8 form of {self.path}: {exc}") from exc
        finally:
            fp32.unlink(missing_ok=True)

    # --- running ---------------------------------------------------------------------------
    def _logits(self, texts: list[str], lane: int = 0) -> np.ndarray:
        """Every head's logits of one inner batch (or lane slice), concatenated on the last
        axis; `lane` picks the tokenizer, so lanes never share one."""
        import torch

        enc = self._toks[lane](texts, padding=True, truncation=True, max_length=self.max_length,
                        return_tensors="np" if self._session is not None else "pt")
        if self._session is not None:
            feed = {k: np.asarray(enc[k], dtype=np.int64) for k in self._onnx_inputs}
            outs = self._session.run(self.output_names, feed)
            return np.concatenate([np.asarray(o, dtype=np.float32) for o in outs], axis=-1)
        with torch.inference_mode():
            out = self._model(**enc.to(self.device))
            logits = out.logits if hasattr(out, "logits") else torch.cat(tuple(out), dim=-1)
        return logits.float().cpu().numpy()

    def raw_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Every head's logits (concatenated), in input order, inner batches sorted by length."""
        widths = [len(h.labels) for h in self.heads.values()]
        raw = np.zeros((len(texts), sum(widths)), dtype=np.float32)
        order = length_order(texts)
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                raw[idx] = self._in_lanes([texts[i] for i in idx])
        return raw

    def _in_lanes(self, batch: list[str]) -> np.ndarray:
        """One length-sorted inner batch, cut into interleaved slices (alike in length, so
        alike in work) run at once, one per lane; the caller's thread runs the first."""
        n = min(self.lanes, len(batch))
        if n == 1 or self._pool is None:
            return self._logits(batch)
        slices = [list(range(k, len(batch), n)) for k in range(n)]
        futures = [self._pool.submit(self._logits, [batch[i] for i in rows], k)
                   for k, rows in enumerate(slices[1:], start=1)]
        try:
            first = self._logits([batch[i] for i in slices[0]])
        finally:
            wait(futures)  # no lane outlives the call (the next one reuses its tokenizer)
        out = np.empty((len(batch), first.shape[-1]), dtype=np.float32)
        out[slices[0]] = first
        for rows, future in zip(slices[1:], futures, strict=True):
            out[rows] = future.result()
        return out

    def head_probs(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Every head's calibrated probabilities from ONE forward pass per inner batch."""
        widths = [len(h.labels) for h in self.heads.values()]
        raw = self.raw_logits(texts)
        out, col = {}, 0
        for (name, head), width in zip(self.heads.items(), widths, strict=True):
            out[name] = softmax(raw[:, col:col + width], head.temperature).astype(np.float32)
            col += width
        return out

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        """First head's probabilities, shape (len(texts), len(labels)), in input order."""
        return next(iter(self.head_probs(texts).values()))

    def predict_ids(self, texts: Sequence[str]) -> list[int]:
        return self.probs(texts).argmax(-1).tolist()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "backend": self.backend,
                "device": self.device, "lanes": self.lanes, "labels": list(self.labels),
                "heads": {n: len(h.labels) for n, h in self.heads.items()}}

    def __repr__(self) -> str:
        return f"TextModel({json.dumps(self.describe())})"
