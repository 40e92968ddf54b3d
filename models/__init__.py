"""Classifiers: the seam (`Classifier`), the registry, and the shipped models."""

from finsentry.models.base import CLASSIFIERS, Classifier, Prediction, load_classifier

__all__ = ["CLASSIFIERS", "Classifier", "Prediction", "load_classifier"]
