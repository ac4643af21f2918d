"""What `ferret run` writes and prints beyond summary.json: metrics.csv, the console summary, and
the baseline it compares with."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from analysis.units import format_bytes, format_seconds
from planner.errors import FerretError
from planner.fileio import read_json
from planner.provenance import check_made_for


def read_baseline(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json" if folder.is_dir() else folder
    summary = read_json(path, "baseline summary")
    needed = ("online_accuracy", "test_accuracy", "measured_peak_memory_bytes")
    if not isinstance(summary, dict) or any(not isinstance(summary.get(k), int | float) for k in needed):
        raise FerretError(f"baseline summary {path} lacks numeric {', '.join(needed)}; is it a ferret run folder?")
    if summary["measured_peak_memory_bytes"] <= 0:
        raise FerretError(f"baseline summary {path}: measured_peak_memory_bytes must be positive")
    return summary


def check_baseline(baseline: dict[str, Any], made_from: dict[str, Any], path: Path, force: bool) -> None:
    """oagm/tagm compare two runs of one stream: the baseline must have run the same data set,
    stream (with their options) and sample count."""
    recorded = {key: baseline.get(key) for key in ("dataset", "stream", "samples")}
    recorded.update({k: v for k, v in (baseline.get("provenance") or {}).items() if k.endswith("_options")})
    actual = {key: made_from.get(key) for key in (*recorded, "dataset_options", "stream_options")}
    check_made_for(recorded, actual, f"--baseline {path}", "this run", force=force)


def save_inputs(staging: Path, experiment: Any, out: Path) -> None:
    """The profile(s) and plan the run uses, into its folder (`--repeat-of` reruns from them);
    a profile measured now says so, since a rerun that measures again gets other step times."""
    from analysis.run_repeat import SAVED_PLAN, SAVED_PROFILE

    spec, setup = experiment.spec, experiment.setup
    setup.profile.save(staging / SAVED_PROFILE)
    for profile in setup.batch_profiles:
        profile.save(staging / f"profile.batch{profile.batch_size}.json")
    pipeline = spec.framework_options.pipeline
    if pipeline is not None:
        pipeline.plan.save(staging / SAVED_PLAN)
    if spec.profile_path is None and setup.profile.source == "measured":
        print(
            f"step times measured now on {setup.profile.device}: a run that measures again gets other times; "
            f"this one's are saved as {out / SAVED_PROFILE} (--repeat-of {out} reruns this very run)"
        )


def write_metrics_csv(path: Path, result: Any, online: Any, test: Any) -> None:
    """One row per checkpoint: samples seen, virtual time, online and test accuracy, data trained."""
    trained_at = result.trained_at_s
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["samples", "time_s", "online_accuracy", "test_accuracy", "trained"])
        for k, samples in enumerate(result.checkpoint_samples.tolist()):
            t = float(result.checkpoint_time_s[k])
            trained = int((trained_at <= t).sum())
            test_value = "" if not math.isfinite(test[k]) else f"{test[k]:.4f}"
            writer.writerow([samples, f"{t:.9g}", f"{online[samples - 1]:.4f}", test_value, trained])


def print_summary(summary: dict[str, Any], out: Path) -> None:
    def pct(value: Any) -> str:
        return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f} %"

    print(
        f"{summary['framework']} / {summary['algorithm']} on {summary['dataset']} ({summary['stream']}, "
        f"{summary['samples']} samples every {format_seconds(summary['arrival_interval_s'])}; "
        f"a step on one sample takes {format_seconds(summary['sample_step_s'])}"
        + (f", each further row {format_seconds(summary['row_step_s'])})" if summary.get("step_fixed_s") else ")")
    )
    print(
        f"  online accuracy {pct(summary['online_accuracy'])}   test accuracy {pct(summary['test_accuracy'])}   "
        f"A_AUC {pct(summary['a_auc'])}   forgetting {pct(summary['forgetting'])}"
    )
    print(
        f"  trained {summary['trained']}, skipped {summary['skipped']} in {summary['steps']} steps; "
        f"{summary['train_flops'] / 1e9:.3g} GFLOPs; peak memory {format_bytes(summary['measured_peak_memory_bytes'])}"
    )
    if summary.get("stored_peak_bytes") is not None:
        budget = summary.get("memory_budget")
        limit = "" if budget is None else f" of a {format_bytes(budget['budget_bytes'])} budget"
        line = (
            f"  stored state peak {format_bytes(summary['stored_peak_bytes'])}{limit} "
            f"(replay {summary['buffer_samples']} samples); {summary['train_flops_per_sample'] / 1e6:.4g} MFLOPs per sample"
        )
        if "train_wall_s" in summary:
            line += (
                f" at {summary['iterations_per_sample']:.3g} iterations per sample; training took "
                f"{format_seconds(summary['train_wall_s'])} wall, {format_seconds(summary['train_cpu_s'])} CPU"
            )
        print(line)
    if "mode" in summary:  # a pipeline run
        print(
            f"  {summary['strategy']} plan, P = {summary['num_stages']}, {summary['active_workers']} workers, "
            f"{summary['mode']} with {summary['compensation']} compensation; mean staleness "
            f"{summary['mean_staleness'] or 0:.2f}; weights + activations peak "
            f"{format_bytes(summary['measured_weights_activations_peak_bytes'])} "
            f"(closed form {format_bytes(summary['predicted_memory_bytes'])})"
        )
    if "oagm" in summary:
        print(f"  vs baseline {summary['baseline']}: oagm {summary['oagm']:.3f}, tagm {summary['tagm']:.3f}")
    extra = ", plan.json, trace.jsonl, chrome_trace.json" if "mode" in summary else ""
    print(f"  wrote {out}/ (summary.json, config.json, metrics.csv, accuracy.png, profile.json{extra})")
