"""`ferret plan`: the best pipeline plan of a strategy for a memory budget and a stream."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from analysis.config_args import unit_type
from analysis.output import write_siblings
from analysis.units import (
    cli_type,
    format_bytes,
    format_seconds,
    parse_budget,
    parse_positive_float,
    parse_rate,
    parse_seconds,
)
from planner.builtin import resolve_profile
from planner.closed_form import arrival_limited_rate
from planner.errors import FerretError
from planner.fileio import atomic_files
from planner.learning import DEFAULT_OBJECTIVE, OBJECTIVES, beside, learning_rate, model_for
from planner.output_safety import siblings
from planner.plan import MAX_GROUP
from planner.profile import ModelProfile
from planner.quantities import MAX_DEVICES
from planner.search import PlanResult
from planner.strategies import STRATEGIES, make_plan, minimal_budget

NAME = "plan"
OUTPUT = "file"
HELP = "choose a pipeline plan (partition, workers, techniques) for a memory budget and a stream"
DESCRIPTION = (
    "Search the strategy's plans for the highest adaptation rate whose memory fits the budget "
    "(Ferret: Alg. 2 + 3 of the paper). Writes the plan to --out and, beside it, "
    "<stem>.summary.json (predicted rate and memory, search log) and <stem>.config.json (the resolved "
    "arguments): e.g. --out out/plan.json gives out/plan.summary.json and out/plan.config.json. "
    "All three are written together or not at all. An infeasible budget writes nothing and exits 2."
)
SYNCHRONOUS = ("gpipe", "1f1b")


def _interval(text: str) -> str | float:
    return "auto" if text.strip().lower() == "auto" else parse_seconds(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", required=True, help="profile JSON, or builtin:NAME (a profile shipped with ferret)"
    )
    parser.add_argument(
        "--budget",
        type=cli_type(parse_budget),
        default="max",
        help="memory budget: a size (64MiB, 1.5GB, bytes if bare), 'min' (the smallest feasible, M−) "
        "or 'max' (unconstrained, M+)",
    )
    parser.add_argument(
        "--arrival-interval",
        type=cli_type(_interval),
        default="auto",
        help="time between data arrivals (2ms, 150us); 'auto' = the slowest layer's forward time, as in the paper",
    )
    parser.add_argument(
        "--decay", type=cli_type(parse_rate), default=1.0, help="data-value decay rate c, per second (1/s, 0.5, 2/ms)"
    )
    parser.add_argument(
        "--value", type=cli_type(parse_positive_float), default=1.0, help="initial value V_D of a datum"
    )
    parser.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        default="ferret",
        help="; ".join(f"{name}: {s.summary}" for name, s in STRATEGIES.items()),
    )
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=DEFAULT_OBJECTIVE,
        help="ferret only: 'learning' (default) maximises the learning-aware score — value discounted by "
        "delay and staleness, discounts fitted beside the profile (<profile>.learning.json, "
        "benchmarks/fit_learning.py; else the built-in fit) — and also weighs latest-weights backward; "
        "'rate' the paper's adaptation rate (F3)",
    )
    parser.add_argument(
        "--devices",
        type=unit_type("int", "devices", ge=1, le=MAX_DEVICES),
        default=None,
        help="devices D: every stage on one owner device, contiguous blocks of stages balanced by stage time (what "
        "--mode distributed runs); default: each (worker, stage) its own device, the closed forms' regime",
    )
    parser.add_argument(
        "--minibatch",
        type=unit_type("int", "minibatch", ge=1, le=MAX_GROUP),
        default=None,
        help="gpipe/1f1b only: fix the mini-batch size instead of choosing the best one",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="plan JSON to write (siblings: <stem>.summary.json, <stem>.config.json)"
    )


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    profile = resolve_profile(args.profile)
    td = float(profile.t_fwd.max()) if args.arrival_interval == "auto" else args.arrival_interval
    if td <= 0:
        raise FerretError("--arrival-interval auto needs a profile with a positive forward time; give a time")
    options: dict[str, Any] = {}
    if args.devices is not None:
        options["num_devices"] = args.devices
    if args.minibatch is not None:
        if args.strategy not in SYNCHRONOUS:
            raise FerretError(f"--minibatch applies to {' and '.join(SYNCHRONOUS)} only, not {args.strategy}")
        options["minibatch"] = args.minibatch
    learning_path = None
    if args.strategy == "ferret":
        options["objective"] = args.objective
        learning_path = None if args.profile.startswith("builtin:") else Path(args.profile)
        options["learning_model"] = model_for(learning_path)
    elif args.objective != DEFAULT_OBJECTIVE:
        raise FerretError(f"--objective applies to the ferret strategy only, not {args.strategy}")
    started = time.perf_counter()
    if args.budget == "max":
        budget = None
    elif args.budget == "min":
        budget = minimal_budget(profile, td, args.decay, args.value, strategy=args.strategy, **options)
    else:
        budget = args.budget
    result = make_plan(args.strategy, profile, td, args.decay, budget, args.value, **options)
    elapsed = time.perf_counter() - started
    if not result.feasible:
        assert budget is not None  # an unbounded budget is always feasible
        raise FerretError(
            f"budget {format_bytes(budget)} is below the smallest footprint found, {format_bytes(result.min_memory_bytes)}"
        )
    summary = _summary(profile, result, budget, td, elapsed)
    if "learning_model" in options:
        model = options["learning_model"]
        summary["objective"] = args.objective
        summary["learning_score"] = learning_rate(profile, result.plan, model) * td
        fitted = None if learning_path is None else beside(learning_path)
        summary["learning_model"] = str(fitted) if fitted is not None and fitted.exists() else "built-in"
    with atomic_files(out) as stage:
        result.plan.save(stage / out.name)
        write_siblings(
            stage, out, args, summary, arrival_interval_s=td, budget_bytes=budget, profile_model=profile.model
        )
    config_path, summary_path = siblings(out)
    print(_table(result, budget, td, args, summary["arrival_limited_rate"]))
    if "learning_score" in summary:
        print(
            f"{'objective':<12} {args.objective}; learning score {summary['learning_score']:.4f} of Oracle's "
            f"(model: {summary['learning_model']})"
        )
    print(f"→ {out} (+ {summary_path.name}, {config_path.name}); planned in {format_seconds(elapsed)}")
    return 0


def _techniques(result: PlanResult) -> dict[str, int]:
    active = [w for w in result.plan.workers if w.active]
    return {
        "recompute_workers": sum(w.recompute for w in active),
        "latest_weights_workers": sum(w.latest for w in active),
        "accumulation_stages": sum(sum(a > 1 for a in w.accumulation) for w in active),
        "omission_stages": sum(sum(o > 0 for o in w.omission) for w in active),
        "removed_workers": len(result.plan.workers) - len(active),
    }


def _arrival_limited(profile: ModelProfile, result: PlanResult) -> float:
    """(F3) capped by arrivals, for the asynchronous strategies; the others' R already is."""
    if result.plan.strategy in SYNCHRONOUS:
        return result.adaptation_rate
    return arrival_limited_rate(profile, result.plan)


def _summary(
    profile: ModelProfile, result: PlanResult, budget: int | None, td: float, elapsed: float
) -> dict[str, Any]:
    plan = result.plan
    return {
        "strategy": plan.strategy,
        "feasible": result.feasible,
        "adaptation_rate": result.adaptation_rate,
        "arrival_limited_rate": _arrival_limited(profile, result),
        "memory_bytes": result.memory_bytes,
        "budget_bytes": budget,
        "min_memory_bytes": result.min_memory_bytes,
        "num_stages": plan.num_stages,
        "partition": list(plan.partition),
        "num_workers": plan.num_workers,
        "active_workers": len(plan.active_workers),
        "minibatch": plan.minibatch,
        "num_devices": plan.num_devices,
        "active_devices": plan.active_devices,
        "arrival_interval_s": td,
        "decay_per_s": plan.decay_per_s,
        "value_per_datum": plan.value_per_datum,
        **_techniques(result),
        "provenance": plan.provenance,
        "planning_s": elapsed,
        "log": list(result.log),
    }


def _table(result: PlanResult, budget: int | None, td: float, args: argparse.Namespace, limited: float) -> str:
    plan, t = result.plan, _techniques(result)
    techniques = (
        f"recomputation on {t['recompute_workers']} workers ({t['latest_weights_workers']} on the latest weights), accumulation at {t['accumulation_stages']} and "
        f"omission at {t['omission_stages']} (worker, stage) pairs, {t['removed_workers']} workers removed"
    )
    budget_text = "unconstrained" if budget is None else format_bytes(budget)
    rows = [
        ("strategy", plan.strategy),
        ("stages", f"P = {plan.num_stages}, partition {list(plan.partition)}"),
        ("workers", f"{len(plan.active_workers)} active of N = {plan.num_workers}, on {plan.active_devices} devices"),
        ("techniques", techniques),
        ("mini-batch", str(plan.minibatch)),
        ("stream", f"td = {format_seconds(td)}, c = {args.decay:g}/s, V_D = {args.value:g}"),
        ("predicted R", f"{result.adaptation_rate:.6g} /s (capped by arrivals: {limited:.6g} /s)"),
        (
            "memory",
            f"{format_bytes(result.memory_bytes)} of {budget_text} (smallest feasible {format_bytes(result.min_memory_bytes)})",
        ),
    ]
    return "\n".join(f"{k:<12} {v}" for k, v in rows)
