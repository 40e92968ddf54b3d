"""Low-level helpers shared by training, evaluation and the engine: seeds, devices, batching."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np


def seed_everything(seed: int) -> None:
    """Fixed seeds for python, numpy and torch (training reproducibility)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is present, else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def length_order(texts: Sequence[str]) -> list[int]:
    """Indices of texts sorted by length, longest first (less padding per batch); ties by
    text, so the same texts in any order form the same batches and lane slices (int8 results
    depend on batch-mates)."""
    return sorted(range(len(texts)), key=lambda i: (-len(texts[i]), texts[i]))


def batched_logits(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int,
                   batch_size: int, device: str = "cpu") -> np.ndarray:
    """Logits for all texts (input order kept) from a torch sequence classifier, no grad; a
    multi-task net's heads come back concatenated along the last axis."""
    import torch

    order = length_order(texts)
    out: list[np.ndarray] = [np.empty(0)] * len(texts)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt").to(device)
            res = model(**enc)
            logits = (res.logits if hasattr(res, "logits") else torch.cat(tuple(res), -1))
            logits = logits.float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = logits[j]
    if was_training:
        model.train()
    return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
