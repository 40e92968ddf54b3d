"""Teacher soft labels keyed by a hash of the text: the hand-off between distillation stages.

Stage 2 of the chain (teacher fine-tune -> **teacher scores texts** -> student distillation).
`score(...)` runs the teacher through the int8 ONNX path over texts sorted by length (chunks of
similar length: little padding), writing one part file per chunk under `<out>.parts/` so a
killed run resumes at the next unscored chunk; the parts are then merged into `<out>` (an .npz:
`keys` uint64 = first 8 bytes of blake2b of the whitespace/case-normalised text, `logits`
float16) and `<out>.json` (the command, the teacher's version, counts). Logits, not
probabilities, are stored so the student may pick any distillation temperature. 30k texts ->
about 0.4 MB: small enough to commit, so the teacher never has to be re-run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finsentry.errors import ModelError

log = logging.getLogger(__name__)


def text_key(text: str) -> int:
    norm = " ".join(text.lower().split())
    return int.from_bytes(hashlib.blake2b(norm.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class SoftLabels:
    keys: np.ndarray  # uint64, sorted
    logits: np.ndarray  # float16 (n, classes)
    labels: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> SoftLabels:
        if not Path(path).is_file():
            raise ModelError(f"soft labels not found: {path}")
        with np.load(path) as z:
            return cls(z["keys"], z["logits"], tuple(str(x) for x in z["labels"]))

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """float32 logits per text; rows of NaN where the teacher never scored the text."""
        want = np.array([text_key(t) for t in texts], dtype=np.uint64)
        pos = np.searchsorted(self.keys, want)
        pos = np.clip(pos, 0, max(len(self.keys) - 1, 0))
        out = np.full((len(texts), self.logits.shape[1]), np.nan, dtype=np.float32)
        if len(self.keys):
            hit = self.keys[pos] == want
            out[hit] = self.logits[pos[hit]].astype(np.float32)
        return out


def score(teacher: Path, texts: Sequence[str], out: Path, *, chunk: int = 512,
          batch_size: int = 32, max_length: int = 128, threads: int | None = None,
          backend: str = "onnx", cache_dir: Path | None = None, command: str = "",
          stop_after: int | None = None) -> dict[str, Any]:
    """Score `texts` with the teacher (resumable by chunk); returns the metadata written."""
    from tqdm.auto import tqdm

    from finsentry.models.engine import TextModel

    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    uniq: dict[int, str] = {}
    for t in texts:
        uniq.setdefault(text_key(t), t)
    keys = sorted(uniq, key=lambda k: (len(uniq[k]), k))  # length buckets, stable
    model = TextModel(teacher, device="cpu", backend=backend, max_length=max_length,
                      batch_size=batch_size, threads=threads, cache_dir=cache_dir)
    n_chunks = (len(keys) + chunk - 1) // chunk
    done_here = 0
    t0 = time.monotonic()
    for c in tqdm(range(n_chunks), desc="teacher scoring", mininterval=5):
        part = parts / f"part-{c:05d}.npz"
        if part.is_file():
            continue
        if stop_after is not None and done_here >= stop_after:
            return {"stopped_at_chunk": c, "chunks": n_chunks}
        ks = keys[c * chunk:(c + 1) * chunk]
        raw = model.raw_logits([uniq[k] for k in ks])
        tmp = part.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(ks, dtype=np.uint64), logits=raw.astype(np.float16))
        tmp.replace(part)
        done_here += 1
    all_keys, all_logits = [], []
    for c in range(n_chunks):
        with np.load(parts / f"part-{c:05d}.npz") as z:
            all_keys.append(z["keys"])
            all_logits.append(z["logits"])
    k = np.concatenate(all_keys) if all_keys else np.zeros(0, dtype=np.uint64)
    lg = np.concatenate(all_logits) if all_logits else np.zeros((0, len(model.labels)))
    order = np.argsort(k)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, keys=k[order], logits=lg[order].astype(np.float16),
                        labels=np.array(model.labels))
    tmp.replace(out)
    meta = {"command": command, "teacher": str(teacher), "teacher_version": model.version,
            "backend": model.backend, "max_length": max_length, "texts": int(len(k)),
            "labels": list(model.labels), "key": "blake2b-8 of lower-cased, space-normalised text",
            "values": "teacher logits (float16), temperature 1", "seconds_this_call":
            round(time.monotonic() - t0, 1)}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta
