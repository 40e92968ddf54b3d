"""Rebuild `csi300_aliases.csv` from the PyPI package index-constitution (MIT licence).

Usage (the package is a build-time input only, not a finsentry dependency)::

    pip download --no-deps index-constitution==1.0.1 -d /tmp/ic
    python -m pip install --no-deps --target /tmp/ic/pkg /tmp/ic/index_constitution-*.whl
    PYTHONPATH=/tmp/ic/pkg python ingest/data/build_csi300_aliases.py

Symbols become exchange-suffixed tickers (SH600519 -> 600519.SH); short names are NFKC
normalised (full-width 'Ａ' -> 'A'), and a name ending in a share-class letter also gets the
name without it ('万科A' -> '万科'), which is how news text writes it.
"""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

OUT = Path(__file__).with_name("csi300_aliases.csv")
SOURCE = "index-constitution 1.0.1 (PyPI, MIT), dataset csi300/latest"


def ticker(symbol: str) -> str:
    exchange, code = symbol[:2].upper(), symbol[2:]
    if exchange not in {"SH", "SZ", "BJ"} or not code.isdigit():
        raise ValueError(f"unexpected CSI 300 symbol {symbol!r}")
    return f"{code}.{exchange}"


def names(short_name: str) -> list[str]:
    raw = short_name.strip()
    norm = unicodedata.normalize("NFKC", raw).replace(" ", "")
    out = [norm]
    if raw != norm:
        out.append(raw)
    if len(norm) >= 3 and norm[-1] in "AB" and not norm[-2].isascii():
        out.append(norm[:-1])
    return list(dict.fromkeys(out))


def main() -> None:
    import index_constitution

    frame = index_constitution.load("csi300", "latest")
    rows = sorted((ticker(str(r.symbol)), "|".join(names(str(r.name))))
                  for r in frame.itertuples())
    with OUT.open("w", encoding="utf-8", newline="") as fh:
        fh.write(f"# source: {SOURCE}; built by ingest/data/build_csi300_aliases.py\n")
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["ticker", "names"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} constituents to {OUT}")


if __name__ == "__main__":
    main()
