"""The classifier seam the stream worker depends on.

A classifier turns many texts into many `Prediction`s in ONE call (`predict_batch`), keeps input
order, and never fails the whole batch for one bad text. It must be safe to call from a worker
thread (the Faust worker runs it in an executor, off the event loop).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from finsentry.config import ModelSettings
from finsentry.errors import ModelError

SENTIMENT_LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Prediction:
    sentiment: str  # one of SENTIMENT_LABELS
    sentiment_probs: dict[str, float]  # keys: SENTIMENT_LABELS
    topic: str
    topic_probs: dict[str, float]
    model_name: str
    model_version: str
    language: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """P(positive) - P(negative), in [-1, 1]."""
        return float(self.sentiment_probs["positive"] - self.sentiment_probs["negative"])


class Classifier(ABC):
    """Small base class: name/version for provenance, one batched call."""

    name: str = "unnamed"
    version: str = "0"

    @abstractmethod
    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        """Classify all texts in one call; result i belongs to texts[i]."""


ClassifierFactory = Callable[[ModelSettings], Classifier]

# Explicit registry: one line per classifier. Filled in by finsentry.models.registry.
CLASSIFIERS: dict[str, ClassifierFactory] = {}


def load_classifier(settings: ModelSettings) -> Classifier:
    """Build the configured classifier (registry name in `settings.classifier`)."""
    from finsentry.models import registry  # noqa: F401  (fills CLASSIFIERS)

    try:
        factory = CLASSIFIERS[settings.classifier]
    except KeyError:
        known = ", ".join(sorted(CLASSIFIERS)) or "none"
        raise ModelError(
            f"unknown classifier {settings.classifier!r} (models.classifier); known: {known}"
        ) from None
    return factory(settings)
