"""`ferret breakdown`: where a run's time went — each trained datum's latency split into parts, and each rank's time."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

NAME = "breakdown"
HELP = "where a run's time went: each trained datum's latency split into parts that add up, per rank and per op"
DESCRIPTION = (
    "Read a run folder of `ferret run --plan` (a distributed run's merged trace.jsonl above all; a twin's "
    "or replay's trace works too) and print where each trained datum's time went, from its arrival to "
    "its last backward: admission, its own ops, behind other data's ops, while its rank ran no op, the "
    "hand-off to the wire and the wire (the parts add up to its latency exactly); per rank the share of "
    "its span in ops, idle and in the loop; per channel how long a send was under way; per op kind and "
    "stage the measured durations beside the profile's; and how many data a worker held at each drop."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUNDIR", help="a folder written by ferret run --plan")
    parser.add_argument("--json", action="store_true", help="the split as JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    from analysis.where_time import render, split_run

    split = split_run(args.run)
    print(json.dumps(asdict(split), indent=1) if args.json else render(split))
    return 0
