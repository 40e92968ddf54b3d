"""Multi-task checkpoints: one shared encoder, several heads, ONE forward pass per document.

Layout (loadable without finsentry, see LOADER below and each model card):

    <folder>/config.json, model.safetensors, tokenizer files   a standard encoder (AutoModel)
    <folder>/heads.safetensors                                 `<head>.weight`, `<head>.bias`
                                                               (fp16) + metadata "finsentry"

The metadata is JSON: {"pooling": "mean", "heads": {"sentiment": {"labels": [...],
"temperature": 1.3}, "topic": {...}}}. Each head is a linear layer on the attention-masked mean
of the last hidden states (e5 and the sentence-transformers MiniLM/mpnet bases were trained for
mean pooling); the temperature was fitted on dev and divides the logits before the softmax.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finsentry.errors import ModelError
from finsentry.models.engine import Head, TextModel, quiet_libraries

HEADS_FILE = "heads.safetensors"
FORMAT = "finsentry-heads/1"

LOADER = '''```python
import json, torch
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer

folder = "path/to/this/folder"
tok = AutoTokenizer.from_pretrained(folder)
enc = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()  # (its pooler is unused)
with safe_open(f"{folder}/heads.safetensors", "pt") as f:
    spec = json.loads(f.metadata()["finsentry"])["heads"]
    w = {k: f.get_tensor(k).float() for k in f.keys()}
x = tok(["Profit rose 40%"], padding=True, truncation=True, max_length=128, return_tensors="pt")
with torch.no_grad():
    h = enc(**x).last_hidden_state
m = x["attention_mask"].unsqueeze(-1).to(h.dtype)
pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)          # mean pooling
for name, head in spec.items():                            # one pass, every head
    logits = pooled @ w[f"{name}.weight"].T + w[f"{name}.bias"]
    probs = torch.softmax(logits / head["temperature"], -1)
    print(name, dict(zip(head["labels"], probs[0].tolist())))
```'''


def is_multitask(path: Path | None) -> bool:
    return path is not None and (Path(path) / HEADS_FILE).is_file()


def read_spec(path: Path) -> dict[str, Any]:
    """The metadata of `<path>/heads.safetensors` (pooling, heads with labels/temperature)."""
    from safetensors import safe_open

    file = Path(path) / HEADS_FILE
    if not file.is_file():
        raise ModelError(f"model folder {path} has no {HEADS_FILE}")
    with safe_open(str(file), "pt") as f:
        meta = f.metadata() or {}
    if "finsentry" not in meta:
        raise ModelError(f"{file} has no 'finsentry' metadata (labels, temperatures)")
    spec: dict[str, Any] = json.loads(meta["finsentry"])
    if spec.get("pooling") != "mean" or not spec.get("heads"):
        raise ModelError(f"{file}: unsupported head spec {spec.get('pooling')!r}")
    return spec


def _mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def build_net(encoder: Any, heads: Mapping[str, int], dropout: float = 0.1) -> Any:
    """An nn.Module: encoder + mean pooling + one Linear per head; forward -> tuple of logits."""
    import torch

    class MultiTaskNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            hidden = int(encoder.config.hidden_size)
            self.drop = torch.nn.Dropout(dropout)
            self.heads = torch.nn.ModuleDict({n: torch.nn.Linear(hidden, k)
                                              for n, k in heads.items()})

        def pooled(self, input_ids: Any, attention_mask: Any,
                   token_type_ids: Any = None) -> Any:
            kw = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kw)
            return _mean_pool(out.last_hidden_state, attention_mask)

        def forward(self, input_ids: Any, attention_mask: Any,
                    token_type_ids: Any = None) -> tuple[Any, ...]:
            pooled = self.drop(self.pooled(input_ids, attention_mask, token_type_ids))
            return tuple(head(pooled) for head in self.heads.values())

    return MultiTaskNet()


def load_net(path: Path, dtype: Any = None) -> tuple[Any, dict[str, Any]]:
    """The torch module of a multi-task folder (fp32 unless `dtype`) and its spec."""
    spec = read_spec(path)
    net = build_net(load_encoder(path, dtype),
                    {n: len(h["labels"]) for n, h in spec["heads"].items()})
    net.heads.load_state_dict({f"{head}.{name}": v for head, weights in
                               head_weights(path, dtype).items() for name, v in weights.items()})
    return net.eval(), spec


def load_encoder(path: Path, dtype: Any = None) -> Any:
    """A folder's encoder (fp32 unless `dtype`); a BERT's pooler is left out (unused)."""
    import torch
    from transformers import AutoModel

    kw: dict[str, Any] = {"dtype": dtype or torch.float32}
    cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") == "bert":
        kw["add_pooling_layer"] = False
    return AutoModel.from_pretrained(path, **kw)


def head_weights(path: Path, dtype: Any = None) -> dict[str, dict[str, Any]]:
    """A multi-task folder's heads.safetensors, one state dict per head."""
    import torch
    from safetensors.torch import load_file

    out: dict[str, dict[str, Any]] = {}
    for key, value in load_file(str(Path(path) / HEADS_FILE)).items():
        head, _, name = key.partition(".")
        out.setdefault(head, {})[name] = value.to(dtype or torch.float32)
    return out


def save_net(net: Any, tok: Any, out: Path, labels: Mapping[str, tuple[str, ...]],
             temperatures: Mapping[str, float], language: str) -> None:
    """Write the standard encoder folder (fp16) + heads.safetensors with the spec metadata."""
    import torch
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = net.encoder
    encoder.config.finsentry_language = language
    encoder.config.finsentry_heads = list(labels)
    encoder.half().save_pretrained(out)
    encoder.float()
    tok.save_pretrained(out)
    spec = {"format": FORMAT, "pooling": "mean", "language": language,
            "heads": {n: {"labels": list(labels[n]),
                          "temperature": float(temperatures.get(n, 1.0))} for n in labels}}
    tensors = {k: v.detach().to(torch.float16).contiguous()
               for k, v in net.heads.state_dict().items()}
    save_file(tensors, str(out / HEADS_FILE), metadata={"finsentry": json.dumps(spec)})


class MultiTaskModel(TextModel):
    """A multi-task folder behind the engine: `head_probs(texts)` -> {head: probabilities}."""

    def _read_heads(self, config: Any) -> dict[str, Head]:
        spec = read_spec(self.path)
        if spec.get("language"):
            self.language = str(spec["language"])
        return {n: Head(tuple(h["labels"]), float(h.get("temperature", 1.0)))
                for n, h in spec["heads"].items()}

    def _load_torch(self) -> Any:
        with quiet_libraries():  # no weight-loading bars or load reports on a first demo
            return load_net(self.path)[0]
