"""`ferret compare`: several run folders → one table and two figures (which learned best for how much memory)."""

from __future__ import annotations

import argparse
from pathlib import Path

from planner.errors import FerretError
from planner.fileio import atomic_dir

NAME = "compare"
HELP = "compare run folders: one table (accuracy, memory, FLOPs, oagm/tagm) and accuracy/memory figures"
DESCRIPTION = (
    "Read the folders of `ferret run` (sequential or pipeline runs) and write comparison.md and "
    "comparison.csv (one row per run, or with --group-by seed one per configuration: mean ± std over "
    "its seeds; columns online and test accuracy, A_AUC, forgetting, measured peak memory, the plan's "
    "(F4) memory, train FLOPs, share of the stream trained, drop rate, mean staleness, oagm/tagm "
    "against the baseline), accuracy.png (online accuracy curves overlaid) and memory_vs_accuracy.png "
    "(online accuracy against measured memory, Pareto front marked), and print the table. Runs on "
    "another data set, stream, sample count or seed set are refused unless --force. A configuration "
    "is everything in config.json but the seed, the output folder and provenance."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUNDIR", help="folders written by ferret run")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="RUNDIR",
        help="run whose configuration oagm/tagm are measured against, seed by seed (default: the 1-skip runs "
        "when present); added to the table if not among RUNDIR",
    )
    parser.add_argument(
        "--group-by",
        choices=("seed",),
        default=None,
        help="'seed': one row per configuration, mean ± std over the seeds it has",
    )
    parser.add_argument(
        "--force", action="store_true", help="compare runs even when data set, stream, sample count or seeds differ"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (not a run folder)")


def run(args: argparse.Namespace) -> int:
    from analysis.compare import baseline_label, comparison_rows, load_runs
    from analysis.compare_table import (
        comparison_document,
        comparison_markdown,
        comparison_summary,
        write_comparison_csv,
    )
    from analysis.output import write_config, write_summary
    from analysis.plots_compare import write_figures

    if (args.out / "metrics.csv").exists():
        raise FerretError(f"--out {args.out} is a run folder; writing there would overwrite its summary and figure")
    folders = list(args.runs)
    if args.baseline is not None and all(f.resolve() != args.baseline.resolve() for f in folders):
        folders.append(args.baseline)
    runs = load_runs(folders)
    baseline = None if args.baseline is None else runs[[f.resolve() for f in folders].index(args.baseline.resolve())]
    grouped = args.group_by == "seed"
    rows = comparison_rows(runs, group_by_seed=grouped, baseline=baseline, force=args.force)
    with atomic_dir(args.out) as stage:
        (stage / "comparison.md").write_text(comparison_document(rows, grouped), encoding="utf-8")
        write_comparison_csv(stage / "comparison.csv", rows)
        figures = write_figures(rows, stage)
        write_summary(stage, {**comparison_summary(rows, grouped, args.force), "figures": figures})
        write_config(stage, args)
    print(comparison_markdown(rows, grouped))
    against = baseline_label(rows)
    print(f"oagm/tagm against {against}" if against else "no baseline: no oagm/tagm")
    print(f"wrote {args.out}/ (comparison.md, comparison.csv, {', '.join(figures)}, summary.json, config.json)")
    return 0
