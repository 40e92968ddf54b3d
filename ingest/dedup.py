"""Exact repeats (canonical URL, content hash) and near-duplicates (MinHash LSH) with novelty.

Novelty follows RavenPack's event-novelty idea: the first story of a cluster within the window
(24 h by default) scores 1.0; each later story in that window decays it (`decay ** n`, n = the
earlier stories of the cluster in the window), and is linked to the first by `duplicate_of`.
Signatures are persisted with the cluster ids, so the index survives restarts.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from datasketch import MinHash, MinHashLSH

from finsentry.config import IngestSettings
from finsentry.ingest.state import StateStore
from finsentry.records import Document, normalise_text

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+")
SHINGLE = 3
SCHEME = "affine32"  # persisted signatures must be re-read with the scheme that made them
MIN_TOKENS = 8  # shorter texts (one-line posts) are too small for a meaningful signature


@dataclass(frozen=True)
class Verdict:
    kind: Literal["new", "duplicate", "near_duplicate"]
    novelty: float = 1.0
    duplicate_of: str | None = None
    cluster_id: str | None = None
    similarity: float | None = None


def shingles(text: str) -> set[bytes]:
    """Word 3-grams (one token per CJK character, so Chinese text shingles too)."""
    tokens = _TOKEN.findall(normalise_text(text).lower())
    if len(tokens) < SHINGLE:
        return {" ".join(tokens).encode()} if tokens else set()
    return {" ".join(tokens[i:i + SHINGLE]).encode() for i in range(len(tokens) - SHINGLE + 1)}


def is_filing(doc: Document) -> bool:
    return bool(doc.metadata.get("filing") and doc.metadata.get("accession_number"))


def shared_lines(texts: list[str], min_docs: int = 3, min_share: float = 0.5) -> frozenset[str]:
    """Lines a source repeats across one run's items (bylines, disclaimers, 'Filed: …'),
    found without configuration: in at least `min_docs` texts and `min_share` of them."""
    if len(texts) < min_docs:
        return frozenset()
    counts: dict[str, int] = {}
    for text in texts:
        for line in {ln.strip() for ln in text.splitlines()}:
            if len(line) >= 12:
                counts[line] = counts.get(line, 0) + 1
    need = max(min_docs, int(min_share * len(texts) + 0.999))
    return frozenset(line for line, n in counts.items() if n >= need)


class NoveltyIndex:
    """Decides new / exact duplicate / near duplicate; remembers inside the caller's transaction."""

    def __init__(self, settings: IngestSettings, state: StateStore) -> None:
        self.settings = settings
        self.state = state
        self.window_s = settings.novelty_window_h * 3600.0
        self.num_perm = settings.minhash_perm
        template = MinHash(num_perm=self.num_perm, scheme=SCHEME)
        self._dtype = template.hashvalues.dtype
        self._perms = template.permutations  # computing them per document dominates otherwise
        self.lsh = MinHashLSH(threshold=settings.near_dup_threshold, num_perm=self.num_perm)
        self._sigs: dict[str, MinHash] = {}
        self._added: dict[str, float] = {}  # doc id -> when indexed (for pruning)
        self._load()

    def _load(self) -> None:
        """Rebuild the in-memory LSH from persisted signatures (restart-safe)."""
        rows = self.state.query(
            "SELECT doc_id, signature, added_at FROM stories WHERE added_at >= ?",
            (time.time() - 2 * self.window_s,))
        for doc_id, blob, added_at in rows:
            sig = MinHash(num_perm=self.num_perm, scheme=SCHEME, permutations=self._perms,
                          hashvalues=np.frombuffer(blob, dtype=self._dtype))
            self._insert(doc_id, sig, float(added_at))

    def _insert(self, doc_id: str, sig: MinHash, added_at: float | None = None) -> None:
        if doc_id not in self._sigs:
            self.lsh.insert(doc_id, sig)
            self._sigs[doc_id] = sig
            self._added[doc_id] = added_at if added_at is not None else time.time()

    def forget(self, doc_id: str) -> None:
        if doc_id in self._sigs:
            self.lsh.remove(doc_id)
            del self._sigs[doc_id], self._added[doc_id]

    def prune(self) -> int:
        """Forget signatures older than two windows (they can no longer affect novelty)."""
        cutoff = time.time() - 2 * self.window_s
        old = [d for d, t in self._added.items() if t < cutoff]
        for doc_id in old:
            self.forget(doc_id)
        return len(old)

    def signature(self, doc: Document,
                  boilerplate: frozenset[str] = frozenset()) -> MinHash | None:
        """MinHash of the story's own content: `boilerplate` lines (what a source repeats in
        every item) are left out. Filings have none: distinct accession numbers are distinct
        events however alike their forms read."""
        if is_filing(doc):
            return None
        text = doc.text[:20_000]
        if boilerplate:
            text = "\n".join(ln for ln in text.splitlines() if ln.strip() not in boilerplate)
        grams = shingles(f"{doc.title}\n{text}")
        if len(grams) < MIN_TOKENS - SHINGLE + 1:
            return None
        sig = MinHash(num_perm=self.num_perm, scheme=SCHEME, permutations=self._perms)
        sig.update_batch(sorted(grams))
        return sig

    def assess(self, doc: Document, sig: MinHash | None) -> Verdict:
        """Call under `state.lock` together with `remember` (check-then-act must be atomic)."""
        if self.state.is_seen(doc.id):
            return Verdict("duplicate", duplicate_of=doc.id)
        # two filings may read alike (same form, same company, same day): their ids differ
        owner = (self.state.hash_owner(doc.content_hash)
                 if doc.content_hash and not is_filing(doc) else None)
        if owner is not None:
            return Verdict("duplicate", duplicate_of=owner)
        if sig is None:
            return Verdict("new", cluster_id=doc.id)
        best: tuple[float, str] | None = None
        for cand in self.lsh.query(sig):
            sim = float(sig.jaccard(self._sigs[cand]))
            if sim >= self.settings.near_dup_threshold and (best is None or sim > best[0]):
                best = (sim, cand)
        if best is None:
            return Verdict("new", cluster_id=doc.id)
        cluster = self.state.query("SELECT cluster_id FROM stories WHERE doc_id = ?", (best[1],))
        if not cluster:
            return Verdict("new", cluster_id=doc.id)
        cluster_id = str(cluster[0][0])
        ts = doc.published_at.timestamp()
        earlier = self.state.query(
            "SELECT doc_id, published_ts FROM stories WHERE cluster_id = ? "
            "AND published_ts BETWEEN ? AND ? ORDER BY published_ts, added_at",
            (cluster_id, ts - self.window_s, ts + self.window_s))
        if not earlier:
            # the cluster's stories are outside the window: this one starts a fresh cluster
            return Verdict("new", cluster_id=doc.id, similarity=best[0])
        novelty = self.settings.novelty_decay ** len(earlier)
        return Verdict("near_duplicate", novelty=novelty, duplicate_of=cluster_id,
                       cluster_id=cluster_id, similarity=best[0])

    def remember(self, conn: sqlite3.Connection, doc: Document, verdict: Verdict,
                 sig: MinHash | None) -> None:
        StateStore.mark_seen(conn, doc.id, doc.content_hash, doc.source)
        if sig is not None and verdict.cluster_id is not None:
            conn.execute("INSERT OR REPLACE INTO stories VALUES (?, ?, ?, ?, ?)",
                         (doc.id, verdict.cluster_id, doc.published_at.timestamp(),
                          time.time(), np.asarray(sig.hashvalues, dtype=self._dtype).tobytes()))

    def committed(self, doc: Document, sig: MinHash | None) -> None:
        """Add to the in-memory index (the caller `forget`s it if its transaction rolls back)."""
        if sig is not None:
            self._insert(doc.id, sig)
