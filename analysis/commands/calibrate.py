"""`ferret calibrate`: fit the twin's timing model and the per-layer times to measured traces."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.config_args import add_config_arguments, config_values
from analysis.output import write_config, write_json, write_summary
from planner.fileio import atomic_dir, atomic_write_text

NAME = "calibrate"
HELP = "fit the twin's timing model (per-layer times, overhead, links, contention, jitter) to measured runs"
DESCRIPTION = (
    "Reads the op traces of one or more measured runs (ferret run --plan, or ferret simulate folders) and fits, "
    "robustly: per-layer forward/backward/recompute times (a stage's time split among its layers by the profile's "
    "shares when one partition cannot tell them apart), the per-op overhead, the optimizer step, link latency and "
    "bandwidth (send time vs bytes), the per-device concurrency and slow-down of overlapping ops, host contention "
    "(distributed runs with more busy ranks than --host-cores), the jitter spread and, from distributed runs, the "
    "ops' measured time factors, stalls included (sim_config.json then says jitter 'empirical'). Writes profile.json "
    "(source 'calibrated'), sim_config.json (for ferret simulate/whatif --sim-config), costs.json (the fitted cost "
    "model with recompute's own times and the measured factors, for ferret simulate --costs), calibration.json and "
    "calibration.md "
    "(every parameter with its standard error), summary.json and config.json."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from analysis.calibrate import CalibrationOptions

    parser.add_argument(
        "--measured", type=Path, nargs="+", required=True, help="run folders with a trace (one or more)"
    )
    parser.add_argument(
        "--profile", required=True, help="the profile the runs were planned with (JSON or builtin:NAME)"
    )
    add_config_arguments(parser, CalibrationOptions)
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from analysis.calibrate import CalibrationOptions, calibrate, load_runs
    from analysis.calibrate.report import to_json, to_markdown
    from analysis.run_folder import load_run_folder
    from planner.builtin import resolve_profile

    profile = resolve_profile(args.profile)
    folders = [load_run_folder(path, "--measured") for path in args.measured]
    options = CalibrationOptions(**config_values(args, CalibrationOptions))
    result = calibrate(load_runs(folders, profile), profile, options)
    with atomic_dir(args.out) as stage:
        result.profile.save(stage / "profile.json")
        result.sim_config.save(stage / "sim_config.json")
        result.costs.save(stage / "costs.json")
        write_json(stage / "calibration.json", to_json(result, profile))
        atomic_write_text(stage / "calibration.md", to_markdown(result, profile))
        write_summary(stage, {p.name: p.value for p in result.parameters} | {"runs": len(folders)})
        write_config(stage, args)
    print(f"calibrate: {len(folders)} run(s), {profile.num_layers} layers")
    for p in result.parameters:
        err = "" if p.stderr is None else f" ± {p.stderr:.3g}"
        print(f"  {p.name:18s} {p.value:.6g}{err} {p.unit}{'' if p.fitted else '  (' + p.how + ')'}")
    print(f"  wrote {args.out}/ (profile.json, sim_config.json, costs.json, calibration.json, calibration.md)")
    return 0
