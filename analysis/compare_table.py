"""The comparison written out: the Markdown table (comparison.md, the console), comparison.csv and
the machine-readable summary. Columns are `analysis.compare.METRICS`, in that order."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from analysis.compare import COMPARED, METRICS, ComparisonRow, baseline_label


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_markdown(rows: Sequence[ComparisonRow], grouped: bool, keys: Sequence[str] | None = None) -> str:
    """One line per row. Columns: `keys` (metric keys) if given, else every metric some row has."""
    metrics = [m for m in METRICS if (m.key in keys if keys is not None else any(r.stats[m.key].n for r in rows))]
    header = ["configuration" if grouped else "run", "seeds" if grouped else "seed"]
    header += [m.header for m in metrics] + (["Pareto"] if keys is None else [])
    body = []
    for row in rows:
        cells = [row.label + (" (baseline)" if row.baseline else "")]
        cells.append(str(len(row.runs)) if grouped else str(row.runs[0].seed))
        cells += [row.stats[m.key].format(m.spec, m.scale) for m in metrics]
        body.append(cells + (["✓" if row.pareto else ""] if keys is None else []))
    return markdown_table(header, body)


def comparison_document(rows: Sequence[ComparisonRow], grouped: bool) -> str:
    """comparison.md: what was compared, the table, and how to read it."""
    runs = [run for row in rows for run in row.runs]
    data = "; ".join(dict.fromkeys(f"{name} {describe(run)}" for run in runs for name, describe in COMPARED))
    seeds = sorted({run.seed for run in runs})
    baseline = baseline_label(rows)
    spread = "mean ± sample std over each configuration's seeds" if grouped else "one row per run"
    return "\n".join(
        [
            f"# {len(runs)} runs compared",
            "",
            f"{data}; seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; {spread}.",
            "Memory is the measured peak of each run (`measured_peak_memory_bytes`); F4 memory the plan's closed "
            "form, for pipeline runs. "
            + (
                f"oagm/tagm (F17/F18) are against {baseline}, seed by seed: accuracy gained in points minus "
                "ln(memory ratio)."
                if baseline is not None
                else "No baseline (no 1-skip run, no --baseline): no oagm/tagm."
            ),
            "",
            comparison_markdown(rows, grouped),
            "",
            "Pareto (✓): no other row is better on online accuracy or measured memory without being worse on the "
            "other.",
            "",
        ]
    )


def write_comparison_csv(path: Path, rows: Sequence[ComparisonRow]) -> None:
    """One line per row; each metric in raw units (%, bytes, FLOPs, fractions) with its std."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        header = ["label", "framework", "runs", "seeds", "n", "baseline", "pareto"]
        writer.writerow(header + [name for m in METRICS for name in (m.key, f"{m.key}_std")])
        for row in rows:
            cells: list[Any] = [row.label, row.framework, ";".join(r.name for r in row.runs)]
            cells += [" ".join(map(str, row.seeds)), len(row.runs), str(row.baseline).lower(), str(row.pareto).lower()]
            for m in METRICS:
                stat = row.stats[m.key]
                cells += [_number(stat.mean), _number(stat.std)]
            writer.writerow(cells)


def comparison_summary(rows: Sequence[ComparisonRow], grouped: bool, forced: bool) -> dict[str, Any]:
    def stat(row: ComparisonRow, key: str) -> dict[str, Any]:
        s = row.stats[key]
        return {"mean": s.mean, "std": s.std, "n": s.n}

    return {
        "runs": sum(len(row.runs) for row in rows),
        "grouped_by": "seed" if grouped else None,
        "forced": forced,
        "baseline": baseline_label(rows),
        "pareto": [row.label for row in rows if row.pareto],
        "rows": [
            {
                "label": row.label,
                "framework": row.framework,
                "runs": [r.name for r in row.runs],
                "seeds": row.seeds,
                **{m.key: stat(row, m.key) for m in METRICS},
            }
            for row in rows
        ],
    }


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.10g}"
