"""Per-minute rollups of scored_documents, defined once as data.

Each rollup is a SummingMergeTree fed by a materialized view. Its definition here produces the
view's SELECT, the backfill and the sink's reconciliation query, so a new rollup is one entry in
`ROLLUPS` plus one migration, and the sink's crash top-up (see `finsentry.store.sink`) covers it
automatically. Everything generated runs on ClickHouse 18.16 and chdb alike.

`sentiment_minute` (migration 2) is the original rollup; its DDL text stays frozen in the
migration (checksums), and the definition below reproduces its grouping for the top-up.

`sentiment_rollup` (migration 6) is what rules and dashboards read. Per minute and key
(language, topic, ticker, source, sentiment) it also keeps the ticker's relevance and the
document's novelty as tenths (`relevance_tenths`, `novelty_tenths`: 0..10, floor), so a rule
can filter "relevance >= 0.7" or "novelty >= 0.5" (one story syndicated twenty times counts
once) without touching documents.
Measures: `docs` (one per document per ticker), `docs_once` (1 on the first ticker row of each
document only: market-wide series sum it so a document naming three tickers counts once),
`score_sum`, and `p_negative_sum` (the expected negative count, for calibrated metrics).
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_TABLE = "scored_documents"

# One element per (document, ticker); documents naming no ticker get one '' element with
# relevance 1 so they are still counted. Tuple: (ticker, relevance, first-element flag).
_TICKER_ROWS = (
    "arrayJoin(if(empty(tickers), [(toString(''), toFloat32(1), toUInt8(1))], "
    "arrayMap((t, r, i) -> (t, r, toUInt8(i = 1)), tickers, ticker_relevance, "
    "arrayEnumerate(tickers))))"
)


def tenths(expr: str) -> str:
    """A [0, 1] value as floor tenths 0..10 (the epsilon keeps Float32 0.9 at 9, not 8)."""
    return f"toUInt8(least(10, greatest(0, floor(toFloat64({expr}) * 10 + 0.0001))))"


def _as(expr: str, name: str) -> str:
    return name if expr == name else f"{expr} AS {name}"


@dataclass(frozen=True)
class Rollup:
    """A per-minute SummingMergeTree rollup of scored_documents.

    `dims` and `measures` are (column, expression over one ticker row, ClickHouse type); the
    expressions may use `tr` (the ticker-row tuple, defined by the `ticker` dimension).
    """

    table: str
    dims: tuple[tuple[str, str, str], ...]
    measures: tuple[tuple[str, str, str], ...]

    @property
    def view(self) -> str:
        return f"{self.table}_mv"

    @property
    def dim_names(self) -> list[str]:
        return [name for name, _, _ in self.dims]

    @property
    def measure_names(self) -> list[str]:
        return [name for name, _, _ in self.measures]

    def table_ddl(self) -> str:
        cols = ",\n    ".join(f"{n} {t}" for n, _, t in (*self.dims, *self.measures))
        return (f"CREATE TABLE IF NOT EXISTS {self.table} (\n    run_id String,\n    {cols}\n"
                f") ENGINE = SummingMergeTree()\nPARTITION BY toYYYYMM(minute)\n"
                f"ORDER BY (run_id, {', '.join(self.dim_names)})")

    def select(self, source: str, where: str = "") -> str:
        """The rollup's rows computed from `source` (the table, or `table FINAL`).

        One SELECT level (18.16 cannot resolve subquery aliases inside a view); the ticker row
        is aliased `tr` where it first appears and reused by the other expressions.
        """
        cols = ["run_id", *(_as(expr, name) for name, expr, _ in (*self.dims, *self.measures))]
        group = ", ".join(["run_id", *self.dim_names])
        where_sql = f"\nWHERE {where}" if where else ""
        return (f"SELECT\n    {', '.join(cols)}\nFROM {source}{where_sql}\nGROUP BY {group}")

    def view_ddl(self) -> str:
        return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.view} TO {self.table} AS\n"
                f"{self.select(SOURCE_TABLE)}")

    def backfill(self) -> str:
        """Fill the rollup from stored documents, once: it only inserts while the table is empty."""
        return (f"INSERT INTO {self.table} (run_id, {', '.join(self.dim_names)}, "
                f"{', '.join(self.measure_names)})\n"
                f"SELECT * FROM ({self.select(f'{SOURCE_TABLE} FINAL')})\n"
                f"WHERE (SELECT count() FROM {self.table}) = 0")

    def deficits(self) -> str:
        """Keys of one run and some minutes whose documents outnumber what the rollup summed.

        Parameters: %(run_id)s, %(minutes)s (UInt32 minute starts). Truth and rollup are read in
        one statement so both sides come from the same moment. Columns: the dims, then per
        measure `t_<m>` (truth) and `r_<m>` (rollup).
        """
        dims = ", ".join(self.dim_names)
        zero = {"UInt64": "toUInt64(0)", "Float64": "toFloat64(0)"}
        truth_cols = [f"{m} AS t_{m}" for m in self.measure_names] + [
            f"{zero[t]} AS r_{m}" for m, _, t in self.measures]
        roll_cols = [f"{zero[t]} AS t_{m}" for m, _, t in self.measures] + [
            f"sum({m}) AS r_{m}" for m in self.measure_names]
        sums = ", ".join(f"sum(t_{m}) AS t_{m}, sum(r_{m}) AS r_{m}" for m in self.measure_names)
        minute_filter = "toUInt32(toStartOfMinute(published_at)) IN %(minutes)s"
        truth = self.select(f"{SOURCE_TABLE} FINAL",
                            where=f"run_id = %(run_id)s AND {minute_filter}")
        return (f"SELECT {dims}, {sums}\nFROM (\n"
                f"    SELECT {dims}, {', '.join(truth_cols)} FROM ({truth})\n"
                f"    UNION ALL\n"
                f"    SELECT {dims}, {', '.join(roll_cols)} FROM {self.table}\n"
                f"    WHERE run_id = %(run_id)s AND toUInt32(minute) IN %(minutes)s\n"
                f"    GROUP BY {dims}\n)\nGROUP BY {dims}\n"
                f"HAVING t_docs > r_docs")


_MINUTE = ("minute", "toStartOfMinute(published_at)", "DateTime('UTC')")
_TICKER = ("ticker", f"tupleElement({_TICKER_ROWS} AS tr, 1)", "String")
_DOCS = ("docs", "count()", "UInt64")
_SCORE = ("score_sum", "sum(toFloat64(score))", "Float64")

SENTIMENT_MINUTE = Rollup(
    table="sentiment_minute",
    dims=(_MINUTE, ("topic", "topic", "String"), _TICKER,
          ("source", "source", "String"), ("sentiment", "sentiment", "String")),
    measures=(_DOCS, _SCORE),
)

SENTIMENT_ROLLUP = Rollup(
    table="sentiment_rollup",
    dims=(_MINUTE, ("language", "language", "String"), ("topic", "topic", "String"),
          _TICKER, ("relevance_tenths", tenths("tr.2"), "UInt8"),
          ("source", "source", "String"), ("novelty_tenths", tenths("novelty"), "UInt8"),
          ("sentiment", "sentiment", "String")),
    measures=(_DOCS, ("docs_once", "sum(toUInt64(tr.3))", "UInt64"), _SCORE,
              ("p_negative_sum", "sum(toFloat64(p_negative))", "Float64")),
)

# Every rollup fed from scored_documents: the sink reconciles each after a re-delivery.
ROLLUPS: tuple[Rollup, ...] = (SENTIMENT_MINUTE, SENTIMENT_ROLLUP)
