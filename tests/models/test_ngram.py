"""The Chinese char n-gram model: baseline, hashed blend partner, weight chosen on dev."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from finsentry.models.data import finfe
from finsentry.models.ngram import Blend, NgramModel, baseline, choose_weight, load_blend


def test_hashed_model_learns_round_trips_and_stays_small(data_root: Path, tmp_path: Path
                                                         ) -> None:
    train, test = finfe(data_root)
    ng = NgramModel.fit(train.texts, train.targets)
    assert (ng.probs(test.texts).argmax(-1) == np.asarray(test.targets)).mean() == 1.0
    assert baseline(train.texts, train.targets, test.texts).shape == (len(test), 3)
    blend = Blend(ng, 0.6, "abc123")
    path = tmp_path / "blend.npz"
    blend.save(path, {"command": "pytest"})
    assert path.stat().st_size < 1_000_000  # committed artefacts stay under 1 MB
    back = Blend.load(path)
    assert back.weight == 0.6 and back.encoder_version == "abc123"
    enc = np.full((len(test), 3), 1 / 3, dtype=np.float32)
    np.testing.assert_allclose(back.blend(enc, test.texts), blend.blend(enc, test.texts))
    # only the encoder it was fitted for gets the blend
    assert load_blend(SimpleNamespace(version="abc123"), tmp_path / "none") is None
    path.rename(tmp_path / "zh-sentiment-ngram-blend.npz")
    assert load_blend(SimpleNamespace(version="abc123"), tmp_path) is not None
    assert load_blend(SimpleNamespace(version="other"), tmp_path) is None


def test_weight_is_chosen_on_dev() -> None:
    y = [0, 1, 2, 0]
    good = np.eye(3)[y] * 0.9 + 0.1 / 3
    bad = np.eye(3)[[1, 2, 0, 1]] * 0.9 + 0.1 / 3
    assert choose_weight(good, bad, y) == 1.0
    assert choose_weight(bad, good, y) == 0.0
