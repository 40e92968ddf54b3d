"""Base models come from installed PyPI packages, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsentry.errors import ModelError
from finsentry.models.bases import BASES, resolve_base


def test_minilm_is_a_standard_model_folder() -> None:
    path = resolve_base("minilm-l6")
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "bert" and config["num_hidden_layers"] == 6
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_mpnet_is_unpacked_once_from_the_five_wheels(tmp_path: Path) -> None:
    path = resolve_base("mpnet-base", tmp_path)
    assert path == tmp_path / "mpnet-base"
    assert json.loads((path / "config.json").read_text())["model_type"] == "mpnet"
    assert (path / "model.safetensors").stat().st_size > 400_000_000
    mtime = (path / "config.json").stat().st_mtime
    assert resolve_base("mpnet-base", tmp_path) == path
    assert (path / "config.json").stat().st_mtime == mtime


def test_a_folder_passes_through_and_unknown_names_are_errors(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_base(str(tmp_path)) == tmp_path
    with pytest.raises(ModelError, match="unknown base model 'nope'.*minilm-l6"):
        resolve_base("nope")
    assert {"minilm-l6", "mpnet-base"} <= set(BASES)
