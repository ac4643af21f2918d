"""A `Validation` in words and pictures: `validation.json`, `validation.md`, the figures, the console lines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from analysis.output import write_json
from analysis.units import format_bytes, format_seconds
from analysis.validate import MetricComparison, Validation
from planner.config_field import config_field


@dataclass(frozen=True)
class FigureOptions:
    """Settings of the validation figures; each field is one flag (planner/config_field.py)."""

    window_ops: int = config_field(
        200, help="ops in the Gantt chart's window (around the middle of the run)", unit="int", ge=1
    )


def format_value(unit: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "s":
        return format_seconds(value)
    if unit == "B":
        return format_bytes(round(value))
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:.4g}{'' if unit in ('', 'updates') else ' ' + unit}"


def format_error(m: MetricComparison) -> str:
    if m.error is None:
        return "n/a"
    return f"{m.error:+.2f} pt" if m.error_unit == "points" else f"{100 * m.error:+.2f} %"


def format_tolerance(m: MetricComparison) -> str:
    return f"±{m.tolerance:g} pt" if m.error_unit == "points" else f"±{100 * (m.tolerance or 0):g} %"


def verdict_mark(m: MetricComparison) -> str:
    if m.within is None:
        return ""
    return f"{'ok' if m.within else 'OUT'} ({format_tolerance(m)})"


def metrics_table(metrics: tuple[MetricComparison, ...]) -> list[str]:
    lines = ["| metric | predicted | measured | error | tolerance |", "| --- | --- | --- | --- | --- |"]
    for m in metrics:
        lines.append(
            f"| {m.name} | {format_value(m.unit, m.predicted)} | {format_value(m.unit, m.measured)} | "
            f"{format_error(m)} | {verdict_mark(m)} |"
        )
    return lines


def to_markdown(v: Validation, figures: list[str]) -> str:
    lines = [
        "# Predicted vs measured",
        "",
        f"- predicted: `{v.predicted.path}` ({v.predicted.source})",
        f"- measured: `{v.measured.path}` ({v.measured.source}, {v.measured.clock} clock)",
        f"- plan: {v.predicted.plan.strategy}, partition {list(v.predicted.plan.partition)}, "
        f"{len(v.predicted.plan.active_workers)} active workers; {v.predicted_metrics.arrivals} arrivals",
        "",
        "Errors are measured / predicted − 1 (drop rate: percentage points).",
        "",
        *metrics_table(v.metrics),
        "",
        "## Op durations, per kind (pairs with a positive predicted duration)",
        "",
        "| kind | pairs | predicted median | measured median | median error | p90 abs error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k in v.kinds:
        lines.append(
            f"| {k.kind} | {k.pairs} | {format_seconds(k.predicted_median_s)} | {format_seconds(k.measured_median_s)} | "
            f"{100 * k.median_error:+.2f} % | {100 * k.p90_abs_error:.2f} % |"
        )
    lines += [
        "",
        "## Staleness of applied gradients",
        "",
        "| staleness | predicted | measured |",
        "| --- | --- | --- |",
    ]
    pred, meas = v.staleness["predicted"], v.staleness["measured"]
    for tau in range(max(len(pred), len(meas))):
        lines.append(f"| {tau} | {pred[tau] if tau < len(pred) else 0} | {meas[tau] if tau < len(meas) else 0} |")
    if v.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in v.notes)]
    lines += ["", "## Figures", "", *(f"![{name}]({name})" for name in figures), ""]
    return "\n".join(lines)


def console_lines(v: Validation) -> list[str]:
    out = []
    for m in v.metrics:
        if m.name.startswith("peak_memory_device_"):
            continue
        mark = verdict_mark(m)
        out.append(
            f"  {m.name:18s} {format_value(m.unit, m.predicted):>14s} {format_value(m.unit, m.measured):>14s}"
            f"  {format_error(m):>10s}  {mark}"
        )
    for k in v.kinds:
        out.append(
            f"  {k.kind + ' durations':18s} {format_seconds(k.predicted_median_s):>14s} "
            f"{format_seconds(k.measured_median_s):>14s}  {100 * k.median_error:+9.2f} %  (p90 |err| "
            f"{100 * k.p90_abs_error:.1f} %, {k.pairs} pairs)"
        )
    return out


def write_validation(v: Validation, folder: Path, options: FigureOptions | None = None) -> list[str]:
    """validation.json, validation.md and the figures into `folder`; returns the figures' names."""
    from analysis.plots_validate import write_figures

    figures = write_figures(v, folder, (options or FigureOptions()).window_ops)
    write_json(folder / "validation.json", v.to_json())
    (folder / "validation.md").write_text(to_markdown(v, figures), encoding="utf-8")
    return figures
