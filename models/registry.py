"""Explicit classifier registry: one line per classifier (no autodiscovery)."""

from __future__ import annotations

from finsentry.models import classifier as _default
from finsentry.models.base import CLASSIFIERS

CLASSIFIERS["default"] = _default.build
