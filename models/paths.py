"""Where things live: the shipped checkpoints, the data root, the caches (all from settings)."""

from __future__ import annotations

from pathlib import Path

from finsentry.config import ModelSettings

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_root(settings: ModelSettings) -> Path:
    """models.data_root, else ../shared/data relative to the project root."""
    return settings.data_root or PROJECT_ROOT.parent / "shared" / "data"


def shipped(name: str) -> Path | None:
    """A committed checkpoint folder (e.g. 'en-sentiment') when it is present."""
    path = CHECKPOINTS / name
    return path if (path / "config.json").is_file() else None
