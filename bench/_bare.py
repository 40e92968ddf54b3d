"""The bare classifier of bench/pipeline.py, and the thread settings it is measured at."""

from __future__ import annotations

import os
import time
from typing import Any

from _pipeline_parts import peak_rss_mb


class Bare:
    """The bare classifier, loaded once per thread setting: a loop over `predict_batch`
    at the worker's batch size over the burst's texts (the same texts, in the order produced).

    It runs right before and right after every burst, so each end-to-end row is compared with
    the bare loop measured next to it in time (on a shared machine the load drifts by tens of
    percent within minutes); the worker processes, broker and server are up but idle then.
    """

    def __init__(self, texts: list[str], batch_size: int, threads: int | None,
                 label: str, **models: Any) -> None:
        """`models`: further ModelSettings fields (bench/models.py compares `parallel` modes)."""
        from finsentry.config import ModelSettings
        from finsentry.models import load_classifier

        settings = ModelSettings.model_validate(
            models if threads is None else {"threads": threads, **models})
        self.texts, self.batch, self.threads, self.label = texts, batch_size, threads, label
        self.clf: Any = load_classifier(settings)
        self.rss = peak_rss_mb(os.getpid()) or 0.0
        self.clf.predict_batch(texts[:self.batch])  # warm-up, as the worker's
        pred = self.clf.predict_batch(texts[:1])[0]
        engine = getattr(self.clf, "sentiment", None)
        runtime = (f"{engine.backend} on {engine.device}" if engine is not None
                   else settings.backend)
        self.what = f"{self.clf.name} {pred.model_version} (backend {runtime})"
        self.runs: list[tuple[float, float]] = []  # (docs/s, CPU-s per 1000 docs)
        self.predictions: list[Any] = []  # the last pass's (rows for the ceiling's inserts)

    def run(self, record: bool = True) -> tuple[float, float]:
        """One timed pass: documents/s and CPU-s per 1000 documents (`record`: count it in
        the bare mean; the ceiling's pass beside the services is not a bare figure)."""
        b, texts, preds = self.batch, self.texts, []
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(0, len(texts), b):
            preds.extend(self.clf.predict_batch(texts[i:i + b]))
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.predictions = preds
        figures = (len(texts) / took, cpu * 1000 / len(texts))
        if record:
            self.runs.append(figures)
        return figures

    def release(self) -> None:
        """Drop the model (the next thread setting loads its own)."""
        self.clf = None
        self.predictions = []

    def mean(self) -> tuple[float, float]:
        return (sum(r for r, _ in self.runs) / len(self.runs),
                sum(c for _, c in self.runs) / len(self.runs))


def thread_settings(spec: str) -> list[tuple[str, int | None]]:
    """'default,spare,3' -> [('default', None), ('spare', cores - 1), ('3', 3)]."""
    out: list[tuple[str, int | None]] = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        if item == "default":
            out.append((item, None))
        elif item == "spare":
            out.append((item, max(1, (os.cpu_count() or 2) - 1)))
        elif item.isdigit() and int(item) > 0:
            out.append((item, int(item)))
        else:
            raise SystemExit(f"--threads: {item!r} is not 'default', 'spare' or a number")
    return out or [("default", None)]
