"""The default classifier on the shipped checkpoints: batching, order, bad inputs, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from finsentry.config import ModelSettings
from finsentry.errors import ModelError
from finsentry.models import Classifier, load_classifier
from finsentry.models.base import SENTIMENT_LABELS, Prediction
from finsentry.models.classifier import clean_text, detect_language

TEXTS = [
    "Profit rose 40% and the company raised its full-year outlook.",
    "The company filed for bankruptcy.",
    "The annual general meeting will be held in Helsinki on 5 May.",
    "$AAPL shares jump after earnings beat estimates",
    "Fed raises interest rates by 25 basis points",
    "Operating loss widened to EUR 5.2 mn from a profit a year earlier, and the group will cut "
    "120 jobs at its Finnish plants as part of a restructuring programme announced today.",
    "ok",
]


def probs(p: Prediction) -> list[float]:
    return [p.sentiment_probs[lab] for lab in SENTIMENT_LABELS] + sorted(p.topic_probs.values())


def margin(dist: dict[str, float]) -> float:
    """How far the winning class leads the runner-up: small margins may flip under int8."""
    top = sorted(dist.values())
    return top[-1] - top[-2]


@pytest.mark.parametrize("backend,atol", [("torch", (1e-4, 1e-4)), ("onnx", (0.05, 0.2))])
def test_batched_equals_one_by_one_and_keeps_order(default_classifier: Classifier,
                                                   torch_classifier: Classifier, backend: str,
                                                   atol: tuple[float, float]) -> None:
    """fp32: equal within float tolerance. int8: activations get one scale per batch, so a
    text's probabilities shift with its batch-mates (engine.py documents by how much): the
    tolerances are (sentiment, topic), and clear decisions must not change."""
    clf = torch_classifier if backend == "torch" else default_classifier
    batch = clf.predict_batch(TEXTS)
    single = [clf.predict_batch([t])[0] for t in TEXTS]
    reverse = clf.predict_batch(TEXTS[::-1])[::-1]
    assert len(batch) == len(TEXTS)
    for a, b, c in zip(batch, single, reverse, strict=True):
        # the same texts in another order form the same length-sorted batches: exact
        np.testing.assert_allclose(probs(a), probs(c), atol=1e-5)
        assert a.sentiment == c.sentiment and a.topic == c.topic
        np.testing.assert_allclose([a.sentiment_probs[k] for k in SENTIMENT_LABELS],
                                   [b.sentiment_probs[k] for k in SENTIMENT_LABELS],
                                   atol=atol[0])
        np.testing.assert_allclose(sorted(a.topic_probs.values()),
                                   sorted(b.topic_probs.values()), atol=atol[1])
        if backend == "torch" or margin(b.sentiment_probs) > 2 * atol[0]:
            assert a.sentiment == b.sentiment
        if backend == "torch" or margin(b.topic_probs) > 2 * atol[1]:
            assert a.topic == b.topic


def test_prediction_contract(default_classifier: Classifier) -> None:
    for p in default_classifier.predict_batch(TEXTS):
        assert set(p.sentiment_probs) == set(SENTIMENT_LABELS)
        assert sum(p.sentiment_probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert p.sentiment == max(p.sentiment_probs, key=p.sentiment_probs.__getitem__)
        assert -1.0 <= p.score <= 1.0 and p.topic in p.topic_probs
        assert sum(p.topic_probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert p.model_name.startswith("default/") and p.model_version and p.language == "en"


def test_bad_inputs_get_defined_results_without_failing_the_batch(
        default_classifier: Classifier) -> None:
    bad: list[object] = ["", "   \n\t ", None, b"profit rose 40% \xff\xfe", "loss \ud800 widened",
                         "bankrupt\x00cy \x07", "the company filed for bankruptcy " * 50_000, 42]
    good = default_classifier.predict_batch(["The company filed for bankruptcy."])[0]
    out = default_classifier.predict_batch(bad + ["The company filed for bankruptcy."])
    assert len(out) == len(bad) + 1
    for p in (out[0], out[1], out[2], out[7]):
        assert p.sentiment == "neutral" and p.score == 0.0 and p.topic == ""
        assert "skipped" in p.extra
    assert out[3].extra.get("decoded") == "utf-8-replace"
    assert out[4].extra.get("repaired") == "surrogates"
    assert out[6].extra.get("truncated_chars") == len(bad[6])  # type: ignore[arg-type]
    for p in out[3:7]:
        assert p.sentiment in SENTIMENT_LABELS and p.topic
    assert out[-1].sentiment == good.sentiment
    assert out[-1].sentiment_probs == pytest.approx(good.sentiment_probs, abs=0.05)  # int8
    assert default_classifier.predict_batch([]) == []


def test_safe_from_several_threads(default_classifier: Classifier) -> None:
    expected = default_classifier.predict_batch(TEXTS)
    results: list[list[Prediction]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(default_classifier.predict_batch(TEXTS))
        except BaseException as exc:  # noqa: BLE001  (collected and re-raised below)
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for res in results:
        assert [p.sentiment for p in res] == [p.sentiment for p in expected]
        np.testing.assert_allclose([probs(p) for p in res], [probs(p) for p in expected],
                                   atol=1e-5)


def test_int8_path_agrees_with_fp32(default_classifier: Classifier,
                                    torch_classifier: Classifier) -> None:
    fast = default_classifier.predict_batch(TEXTS)
    exact = torch_classifier.predict_batch(TEXTS)
    assert default_classifier.sentiment.backend == "onnx"
    assert torch_classifier.sentiment.backend == "torch"
    agree = sum(a.sentiment == b.sentiment for a, b in zip(fast, exact, strict=True))
    assert agree >= len(TEXTS) - 1
    diffs = [abs(a.score - b.score) for a, b in zip(fast, exact, strict=True)]
    assert sum(diffs) / len(diffs) < 0.1  # accuracy parity is measured by bench/models.py


def test_language_routing(default_classifier: Classifier) -> None:
    assert detect_language("贵州茅台业绩大增，股价创新高") == "zh"
    assert detect_language("$BABA 阿里巴巴 shares fall") == "zh"
    assert detect_language("Profit rose 40%") == "en"
    (p,) = default_classifier.predict_batch(["这家公司亏损严重，股价暴跌，太坑了"])
    assert p.language == "zh"
    if getattr(default_classifier, "zh_multitask", None) is not None:  # Chinese topic head
        assert p.topic and p.model_name == "default/zh-multitask"
        return
    assert p.topic == "" and p.topic_probs == {}
    assert "topic_skipped" in p.extra
    if getattr(default_classifier, "zh_sentiment", None) is None:
        assert "fallback" in p.extra and p.model_name == "default/en-sentiment"
    else:
        assert p.model_name == "default/zh-sentiment"


def test_clean_text() -> None:
    assert clean_text("  a\x00b  ") == ("a b", {})
    assert clean_text(None)[1]["skipped"] == "not text (NoneType)"


def test_user_paths_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown classifier 'nope'.*default"):
        load_classifier(ModelSettings(classifier="nope"))
    with pytest.raises(ModelError, match="has no config.json"):
        load_classifier(ModelSettings(sentiment_path=tmp_path))


def test_onnx_threads_block_instead_of_spinning(default_classifier: Classifier) -> None:
    """Spin-waiting ORT threads burn the CPU the pipeline's own threads (and the broker and
    ClickHouse on the same cores) need; the sessions are built with spinning off."""
    engine = default_classifier.sentiment
    assert engine.backend == "onnx"
    opts = engine._session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_lanes_split_each_batch_across_threads(derived_cache: Path) -> None:
    """parallel=lanes (the default): each inner batch is cut into one slice per thread, run
    whole on that thread (the session at one intra-op thread, a tokenizer per lane); results
    agree with ONNX Runtime's own operator threads within the int8 batch-mate tolerance, and
    the same texts in another order give the same slices, so exactly the same results."""
    lanes = load_classifier(ModelSettings(derived_cache=derived_cache, threads=2))
    ops = load_classifier(ModelSettings(derived_cache=derived_cache, threads=2,
                                        parallel="operators"))
    engine, plain = lanes.sentiment, ops.sentiment
    assert engine.lanes == 2 and plain.lanes == 1
    assert engine._session.get_session_options().intra_op_num_threads == 1
    assert plain._session.get_session_options().intra_op_num_threads == 2
    assert len({id(t) for t in engine._toks}) == 2
    batch, other = lanes.predict_batch(TEXTS), ops.predict_batch(TEXTS)
    reverse = lanes.predict_batch(TEXTS[::-1])[::-1]
    assert any(t.name.startswith("finsentry-lane") for t in threading.enumerate())
    for a, b, c in zip(batch, other, reverse, strict=True):
        np.testing.assert_allclose(probs(a), probs(c), atol=1e-5)
        np.testing.assert_allclose([a.sentiment_probs[k] for k in SENTIMENT_LABELS],
                                   [b.sentiment_probs[k] for k in SENTIMENT_LABELS], atol=0.05)
        if margin(b.sentiment_probs) > 0.1:
            assert a.sentiment == b.sentiment
    with pytest.raises(ModelError, match="unknown parallel mode"):
        type(engine)(engine.path, parallel="threads")
