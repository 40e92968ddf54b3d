"""Temperature scaling is applied only when it lowers dev ECE; intervals and ECE behave."""

from __future__ import annotations

import numpy as np

from finsentry.models.calibration import bootstrap_ci, calibrate, ece


def _overconfident(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 1.0  # right ~60% of the time ...
    return logits * 6.0, y  # ... but claims ~100%


def test_temperature_applied_when_it_lowers_ece() -> None:
    logits, y = _overconfident()
    cal = calibrate(logits, y)
    assert cal["temperature"] > 2 and cal["dev_ece_after"] < cal["dev_ece_before"]


def test_temperature_left_at_one_when_it_does_not_help() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    logits = np.where(np.arange(2)[None, :] == y[:, None], 0.0, -50.0)  # always right, sure
    cal = calibrate(logits, y)
    assert cal["temperature"] == 1.0 and cal["dev_ece_after"] == cal["dev_ece_before"]
    assert "fitted_temperature" in cal


def test_ece_and_bootstrap_interval() -> None:
    y = [0, 1, 1, 0] * 50
    assert ece(np.eye(2)[y], y) == 0.0
    lo, hi = bootstrap_ci(y, y)
    assert lo == hi == 1.0
