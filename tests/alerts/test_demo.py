"""The demo's alert step on the demo's own sample stream (labels from the generator's template
pools, i.e. true labels; the full `finsentry demo` with the model is the demo's own test):
the default rules of deploy/finsentry.toml fire exactly one alert, for the burst ticker."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from finsentry.alerts.demo import evaluate_demo
from finsentry.config import load_settings
from finsentry.records import ScoredDocument, SentimentProbs
from finsentry.store import ScoredSink, Store
from finsentry.streams import sample as sample_mod

ROOT = Path(__file__).resolve().parents[2]


def _label(doc: sample_mod.Document) -> str:
    text = doc.title or doc.text
    if doc.metadata.get("burst"):
        return "negative"
    for pool, label in ((sample_mod.NEGATIVE, "negative"), (sample_mod.POSITIVE, "positive")):
        for template in pool:
            head = template.split("{name}")[-1].split("{")[0].strip()
            if head and head in text:
                return label
    for text_tpl, label in sample_mod.COMMENTS_EN + sample_mod.COMMENTS_ZH:
        tail = text_tpl.split("}")[-1][:6]
        if tail and tail in text:
            return label
    return "neutral"


def test_demo_burst_fires_exactly_one_alert(store: Store, tmp_path: Path) -> None:
    stream = sample_mod.generate(600, seed=7)
    scored = []
    for d in stream.documents:
        label = _label(d)
        probs = {"negative": 0.05, "neutral": 0.05, "positive": 0.05}
        probs[label] = 0.9
        scored.append(ScoredDocument(
            document=d, sentiment=label, sentiment_probs=SentimentProbs(**probs),
            score=probs["positive"] - probs["negative"], topic="markets",
            topic_probs={"markets": 0.9}, model_name="labels", model_version="0",
            run_id="demo-1"))
    ScoredSink(store).write(scored)
    settings = load_settings(ROOT / "deploy" / "finsentry.toml")
    start = min(d.published_at for d in stream.documents).replace(second=0)
    end = max(d.published_at for d in stream.documents)
    line = evaluate_demo(store, settings, "demo-1", start, end, stream.burst_ticker,
                         stream.burst_start, stream.burst_end, tmp_path)
    assert line.startswith("alert: [finsentry] ticker-negative: BAC negative share"), line
    eml = message_from_bytes((tmp_path / "alert-demo-1.eml").read_bytes(), policy=policy.default)
    assert "BAC" in eml["Subject"]
    html = (tmp_path / "alert-demo-1.html").read_text()
    assert "data:image/png;base64," in html and "BAC" in html
