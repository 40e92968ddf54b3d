"""The one output format of every benchmark: Markdown tables on stdout, JSON under bench/results/.

A benchmark builds `Table`s and calls `emit(name, tables, ...)`; `bench/run_all` reads the JSON
files back to rewrite docs/performance.md, so a script that adopts this helper shows up there
with its command and machine line without further work:

    from _results import Table, emit          # bench/ is on sys.path when a script runs
    t = Table("speed", ["model", "docs/s"])
    t.add("en-sentiment", 412.5)
    emit("models", [t], meta={"threads": 2})

Numbers are rendered with `fmt` (ints as-is, floats to 3 significant-ish places), JSON keeps
them raw. Nothing here imports finsentry, so it is cheap to load from any script.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PROJECT_ROOT = BENCH_DIR.parent


def fmt(value: Any) -> str:
    """A table cell: None as '-', floats rounded for reading (JSON keeps the raw value)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


@dataclass
class Table:
    """One titled table; `rows` hold raw values (numbers stay numbers in the JSON)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.title!r}: {len(cells)} cells for "
                             f"{len(self.columns)} columns")
        self.rows.append(list(cells))

    def markdown(self) -> str:
        numeric = [all(isinstance(r[i], int | float) or r[i] is None for r in self.rows)
                   and any(isinstance(r[i], int | float) for r in self.rows)
                   for i in range(len(self.columns))]
        lines = [f"**{self.title}**", "",
                 "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in self.rows]
        lines += [f"\n{note}" for note in self.notes]
        return "\n".join(lines)

    @classmethod
    def from_markdown(cls, title: str, lines: Sequence[str]) -> Table:
        """A table from Markdown rows ('| a | b |'), numeric cells as numbers: for scripts
        that already build their rows as text."""
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines
                if line.strip().startswith("|")]
        rows = [r for r in rows if not all(set(c) <= set("-:") and c for c in r)]
        if not rows:
            return cls(title, ["note"], [[line] for line in lines])
        return cls(title, rows[0], [[_number(c) for c in r] for r in rows[1:]])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Table:
        return cls(data["title"], list(data["columns"]), [list(r) for r in data["rows"]],
                   list(data.get("notes", [])))


def _number(cell: str) -> Any:
    try:
        return int(cell.replace(",", ""))
    except ValueError:
        pass
    try:
        return float(cell.replace(",", ""))
    except ValueError:
        return cell


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where a result was measured: cores, CPU model, load, Python."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cores": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
            "load_avg_1m": round(load[0], 2)}


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that reproduces this run, relative to the project root."""
    args = list(sys.argv if argv is None else argv)
    script = Path(args[0]).resolve() if args else Path("?")
    try:
        shown = str(script.relative_to(PROJECT_ROOT))
    except ValueError:
        shown = str(script)
    return shlex.join([".venv/bin/python", shown, *args[1:]])


def emit(name: str, tables: Sequence[Table], *, meta: dict[str, Any] | None = None,
         command: str | None = None, out_dir: Path | None = None,
         quiet: bool = False) -> Path:
    """Print the tables as Markdown and write bench/results/<name>.json (the latest run)."""
    record = {
        "bench": name,
        "command": command or command_line(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "meta": meta or {},
        "tables": [asdict(t) for t in tables],
    }
    folder = out_dir or RESULTS_DIR
    if out_dir is None and "--smoke" in sys.argv:  # a smoke run never replaces published results
        folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-smoke-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    if not quiet:
        print(f"# {name} benchmark\n")
        for table in tables:
            print(table.markdown(), "\n", sep="")
        print(f"(results: {path})")
    return path


def load(path: Path) -> tuple[dict[str, Any], list[Table]]:
    """A results file back as (record, tables)."""
    record = json.loads(path.read_text(encoding="utf-8"))
    return record, [Table.from_dict(t) for t in record.get("tables", [])]


def tables_from_text(text: str, title: str) -> list[Table]:
    """Tables from a script's printed report: each Markdown table becomes a Table titled by the
    line above it; the other lines are kept in a "notes" table (figures printed as prose)."""
    tables: list[Table] = []
    notes: list[list[Any]] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip().startswith("|"):
            block.append(line)
            continue
        if block:
            tables.append(Table.from_markdown(title, block))
            block = []
        if line.strip():
            title = line.strip().lstrip("#").strip()
            notes.append([title])
    return [*tables, Table("notes", ["note"], notes)] if notes else tables


def emit_report(name: str, report: str, *, out_dir: Path | None,
                meta: dict[str, Any] | None = None) -> Path:
    """Print a script's own report unchanged and record it as tables in <name>.json."""
    print(report, end="" if report.endswith("\n") else "\n")
    return emit(name, tables_from_text(report, name), meta=meta, out_dir=out_dir, quiet=True)
