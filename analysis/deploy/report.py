"""Deploy's report: `report.md`, its pictures, and the verdict line.

The verdict judges the promise — the prediction the plan was chosen on (the twin calibrated
before the run) — against the measured run, with the fidelity bar's tolerances
(`analysis.validate.Tolerances`). When it fails it says which metrics missed, by how much, the
op kinds whose durations were furthest off, and whether recalibrating on the run closed the gap.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from analysis.deploy.loop import PREDICTIONS, DeploySpec, DeployState
from analysis.plot_style import legend, pyplot
from analysis.validate import JUDGED, Tolerances, Validation
from analysis.validate_report import format_error, format_tolerance, format_value

SHOWN = ("throughput_per_s", "drop_rate", "adaptation_rate", "latency_p50_s", "latency_p99_s", "peak_memory_bytes")
FIGURES = ("candidates.png", "errors.png", "learning_curve.png")


def verdict(promise: Validation, recalibrated: Validation | None) -> str:
    judged = [promise.metric(name) for name in JUDGED]
    comparable = [m for m in judged if m.within is not None]
    missed = [m for m in comparable if not m.within]
    if promise.measured.clock == "sequential":
        return "VERDICT: not judged — the measured run has no comparable timeline (a replay runs one op at a time)."
    if not missed:
        shown = ", ".join(f"{m.name} {format_error(m)}" for m in comparable)
        return f"VERDICT: the plan kept its promise — {shown}, all within tolerance."
    why = "; ".join(f"{m.name} off by {format_error(m)} (tolerance {format_tolerance(m)})" for m in missed)
    kinds = sorted(promise.kinds, key=lambda k: -abs(k.median_error))[:2]
    if kinds:
        why += "; op durations: " + ", ".join(f"{k.kind} {100 * k.median_error:+.0f} % (median)" for k in kinds)
    if recalibrated is not None:  # of what the promise missed, what calibrating on the run itself brings back
        again = [recalibrated.metric(m.name) for m in missed]
        still = [m for m in again if not m.within]
        if still:
            misses = ", ".join(f"{m.name} by {format_error(m)}" for m in still)
            why += f"; even recalibrated on this run the twin misses {misses} — something the model does not capture"
        else:
            names = ", ".join(m.name for m in again)
            why += f"; recalibrated on this run the twin gets {names} within tolerance (the probe did not show the run's costs)"
    return f"VERDICT: the plan did not keep its promise — {why}."


def plot_candidates(state: DeployState, path: Path) -> None:
    plt = pyplot()
    cands = state.candidates
    labels = [f"P={c.plan.num_stages}\nN={len(c.plan.active_workers)}\n{list(c.plan.partition)}" for c in cands]
    x = np.arange(len(cands))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cands)), 4), dpi=120)
    try:
        ax.bar(x - 0.2, [c.closed_form_rate for c in cands], 0.4, label="closed form (F3)")
        ax.bar(
            x + 0.2, [c.simulated.adaptation_rate if c.simulated else 0 for c in cands], 0.4, label="calibrated twin"
        )
        chosen = next(k for k, c in enumerate(cands) if c is state.chosen)
        sim = cands[chosen].simulated
        ax.annotate("chosen", (chosen + 0.2, sim.adaptation_rate if sim else 0), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel("adaptation rate R (value/s)")
        _finish(ax, "candidates: the closed forms ignore contention, the twin does not")
        fig.savefig(path)
    finally:
        plt.close(fig)


def plot_errors(state: DeployState, path: Path) -> None:
    plt = pyplot()
    names = [n for n in SHOWN if any(v.metric(n).error is not None for v in state.validations.values())]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=120)
    try:
        width = 0.8 / max(len(state.validations), 1)
        for k, (label, v) in enumerate(state.validations.items()):
            errs = []
            for n in names:
                m = v.metric(n)
                e = 0.0 if m.error is None else (m.error if m.error_unit == "points" else 100 * m.error)
                errs.append(e)
            ax.bar(np.arange(len(names)) + (k - (len(state.validations) - 1) / 2) * width, errs, width, label=label)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_yscale("symlog", linthresh=10)  # the profile alone can miss by 1000 %; calibrated, by a few
        ax.set_xticks(np.arange(len(names)), [n.replace("_", " ") for n in names], fontsize=8)
        ax.set_ylabel("measured vs predicted (%; drop rate: points)")
        _finish(ax, "prediction error of the chosen run, before and after calibration")
        fig.savefig(path)
    finally:
        plt.close(fig)


def _finish(ax: Any, title: str) -> None:
    """The two bar charts' common dressing: title, legend, horizontal grid, tight layout."""
    ax.set_title(title, fontsize=9)
    legend(ax, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.figure.tight_layout()


def write_report(spec: DeploySpec, state: DeployState, tolerances: Tolerances) -> str:
    """Write report.md and its figures into `state.out`; return the verdict line."""
    out = state.out
    plot_candidates(state, out / FIGURES[0])
    plot_errors(state, out / FIGURES[1])
    shutil.copy(state.path("run", "accuracy.png"), out / FIGURES[2])
    promise = state.validations[PREDICTIONS[1]]
    line = verdict(promise, state.validations.get(PREDICTIONS[2]))
    chosen = state.chosen
    assert chosen is not None and chosen.simulated is not None
    lines = [
        f"# Deploy: {spec.model} on {spec.devices} devices, budget {spec.budget}",
        "",
        f"**{line}**",
        "",
        f"Stream: {spec.dataset} ({spec.stream}), {state.samples} samples, {spec.arrival} arrivals every "
        f"{format_value('s', chosen.plan.arrival_interval_s)}; executor: {spec.mode}. Tolerances: throughput "
        f"±{100 * tolerances.throughput:g} %, latency p50 ±{100 * tolerances.latency_p50:g} %, drop rate "
        f"±{tolerances.drop_points:g} points, peak memory ±{100 * tolerances.peak_memory:g} %.",
        "",
        "## Chosen plan",
        "",
        f"Partition {list(chosen.plan.partition)} (P = {chosen.plan.num_stages}), "
        f"{len(chosen.plan.active_workers)} active workers, placement {[list(r) for r in chosen.plan.placement]}. "
        f"Closed form R = {chosen.closed_form_rate:.4g}/s, M = {format_value('B', chosen.closed_form_memory_bytes)}; "
        f"calibrated twin R = {chosen.simulated.adaptation_rate:.4g}/s, drops {100 * chosen.simulated.drop_rate:.1f} %.",
        "",
        "| candidate | partition | stage → device | workers | closed-form R | twin R | twin drops |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, c in enumerate(state.candidates):
        sim = c.simulated
        mark = " (chosen)" if c is chosen else ""
        lines.append(
            f"| {k}{mark} | {list(c.plan.partition)} | {list(c.plan.placement[0])} | {len(c.plan.active_workers)} | "
            f"{c.closed_form_rate:.4g}/s | "
            f"{'–' if sim is None else f'{sim.adaptation_rate:.4g}/s'} | "
            f"{'–' if sim is None else f'{100 * sim.drop_rate:.1f} %'} |"
        )
    lines += ["", "![candidates](candidates.png)", "", "## Predicted vs measured", ""]
    header = "| metric | measured | " + " | ".join(f"{label}: predicted (error)" for label in state.validations) + " |"
    lines += [header, "| --- | --- |" + " --- |" * len(state.validations)]
    for name in SHOWN:
        ms = [v.metric(name) for v in state.validations.values()]
        cells = [f"{format_value(m.unit, m.predicted)} ({format_error(m)})" for m in ms]
        lines.append(f"| {name} | {format_value(ms[0].unit, ms[0].measured)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "![errors](errors.png)",
        "",
        "Per prediction, the full comparison (op durations by kind, staleness, Gantt chart, memory over time):",
        "",
        *(
            f"- {label}: `validate-{key}/validation.md`"
            for label, key in zip(PREDICTIONS, ("profile", "calibrated", "recalibrated"), strict=True)
        ),
        "",
        "![Gantt: calibrated twin vs measured](validate-calibrated/gantt.png)",
        "",
        "## Learning curve",
        "",
        "![learning curve](learning_curve.png)",
        "",
        "## Phases",
        "",
        *(f"- {name}: {seconds:.1f} s" for name, seconds in state.timings.items()),
        "",
        "Calibrations: "
        + ", ".join(f"`{p}/calibration.md`" for p in ("calibration-probe", "calibration") if state.path(p).is_dir()),
        "",
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return line
