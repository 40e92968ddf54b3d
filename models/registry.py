"""Explicit classifier registry: one line per classifier (no autodiscovery)."""

from __future__ import annotations

from finsentry.models.base import CLASSIFIERS

# The models issue fills this in; see finsentry.models.base for the seam.
