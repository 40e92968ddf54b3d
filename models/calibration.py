"""Honest figures: bootstrap confidence intervals, expected calibration error, temperature.

Probabilities feed alert thresholds, so a model's 0.9 should be right about 90% of the time.
`fit_temperature` picks the one scalar T (softmax(logits / T)) that minimises the negative
log-likelihood on the dev slice; it never sees a test set. `bootstrap_ci` resamples the test set
(seeded) so every accuracy carries its 95% interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from finsentry.models.runtime import softmax

BOOTSTRAP_SEED = 42


def bootstrap_ci(y: Sequence[int], p: Sequence[int], n: int = 1000, level: float = 0.95,
                 metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of `metric` (default accuracy) over `n` resamples of the test set."""
    yt, pt = np.asarray(y), np.asarray(p)
    if len(yt) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(yt), size=(n, len(yt)))
    if metric is None:
        stats = (yt[idx] == pt[idx]).mean(axis=1)
    else:
        stats = np.array([metric(yt[i], pt[i]) for i in idx])
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (round(float(lo), 4), round(float(hi), 4))


def ece(probs: np.ndarray, y: Sequence[int], bins: int = 15) -> float:
    """Expected calibration error of the top class (equal-width confidence bins)."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return 0.0
    conf = probs.max(-1)
    right = (probs.argmax(-1) == np.asarray(y)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(conf[mask].mean() - right[mask].mean())
    return round(float(total), 4)


def nll(logits: np.ndarray, y: Sequence[int], temperature: float) -> float:
    p = softmax(np.asarray(logits, dtype=np.float64), temperature)
    return float(-np.log(np.clip(p[np.arange(len(p)), np.asarray(y)], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, y: Sequence[int]) -> float:
    """Temperature in [0.25, 8] minimising dev NLL (log-spaced grid, then a finer local grid)."""
    if len(logits) == 0:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = min(grid, key=lambda t: nll(logits, y, float(t)))
    fine = np.linspace(best / 1.06, best * 1.06, 25)
    return round(float(min(fine, key=lambda t: nll(logits, y, float(t)))), 4)


def calibrate(logits: np.ndarray, y: Sequence[int]) -> dict[str, float]:
    """Temperature scaling only if it helps: fitted on dev NLL, kept when dev ECE drops,
    else 1.0 (the probabilities feed alert thresholds, so a worse ECE is not applied)."""
    fitted = fit_temperature(logits, y)
    before = ece(softmax(np.asarray(logits)), y)
    after = ece(softmax(np.asarray(logits), fitted), y)
    used = fitted if after < before else 1.0
    return {"temperature": used, "fitted_temperature": fitted, "dev_ece_before": before,
            "dev_ece_after": after if used != 1.0 else before,
            "dev_ece_with_fitted": after}


def format_ci(value: float, ci: Sequence[float] | None) -> str:
    """'0.8812 [0.8610, 0.9010]' for tables (just the value when no interval is known)."""
    if not ci:
        return f"{value:.4f}"
    return f"{value:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"
