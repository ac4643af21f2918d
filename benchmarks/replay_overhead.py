"""Per-op overhead of the replay executor beyond the ops' own compute.

    python benchmarks/replay_overhead.py [--data 600] [--rounds 5] [--profile]

For each case a twin trace of `--data` arrivals (digits-sized inputs, one datum per op,
exclusive devices) is replayed two ways on fresh StageRuntimes of the same model and seed:

  bare      the same ops in the same order with the least code that can run them: a dict of
            tensors between stages, cross-entropy at the last stage, the arrivals predicted in
            the same batches (before each backward that closes a gradient group), one test
            evaluation at the end — StageRuntime calls and torch, nothing else
  executor  `ReplayExecutor.run`: the same math plus everything the executor adds — the OCL
            algorithm interface (observe / loss / after_update), checks of every version,
            staleness and update against the trace, memory in two conventions, FLOPs, the
            records behind the metrics — and, in the `+trace` column, the measured op trace
            written to a file

overhead/op = (executor − bare) / ops, ops = the fwd, recompute, bwd and update rows run.
Times are this thread's CPU time, best of `--rounds` alternating rounds (filters most of the
noise of a busy machine). `--profile` adds a pyinstrument profile of one executor run of the
first case: what the remaining overhead is spent on.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from executor.compensation import CompensationConfig
from executor.data import load_dataset
from executor.data.base import Dataset
from executor.data.stream import Stream
from executor.ledger import ByteLedger
from executor.models import LayeredModel, build_model
from executor.ocl.setup import RunSetup
from executor.pipeline.stages import build_stages
from executor.profiler import roofline_profile
from executor.replay import ReplayExecutor, closing_backwards, execution_order, simulate_rows
from executor.stage.optim import OptimizerConfig
from planner.plan import Plan
from planner.strategies import make_plan
from sim.config import SimConfig
from sim.trace import FileTrace

CASES = [
    # (model, strategy, compensation)
    ("mnistnet", "pipedream", "none"),
    ("mnistnet", "ferret", "none"),
    ("mnistnet", "ferret", "iter-fisher"),
    ("mlp", "ferret", "none"),
]


def build(model_name: str, strategy: str, data: int) -> tuple[RunSetup, Plan, list]:
    dataset = load_dataset("digits")
    model = build_model(model_name, dataset.input_shape, dataset.num_classes, seed=0)
    profile = roofline_profile(model, "titan-xp")
    td = float(profile.t_fwd.max())
    plan = make_plan(strategy, profile, td, partition=tuple(range(model.num_layers + 1))).plan
    stream = _stream(dataset, data, td)
    setup = RunSetup(stream, model, profile, eval_every=0)
    rows, _ = simulate_rows(plan, profile, stream.arrival_s, 0, SimConfig(exclusive_devices=True))
    return setup, plan, rows


def _stream(dataset: Dataset, n: int, td: float) -> Stream:
    import numpy as np

    order = np.arange(n, dtype=np.int64) % len(dataset.y_train)
    return Stream("bench", dataset, order, np.arange(n) * td, np.zeros(n, dtype=np.int64))


def fresh(setup: RunSetup, model_name: str) -> RunSetup:
    data = setup.stream.dataset
    model = build_model(model_name, data.input_shape, data.num_classes, seed=0)
    return RunSetup(setup.stream, model, setup.profile, eval_every=0)


def bare(setup: RunSetup, plan: Plan, rows: list, compensation: str) -> Callable[[], int]:
    """The ops of `rows` against StageRuntimes with no executor around them."""
    stale = {r.stage for r in rows if r.kind == "bwd" and r.staleness > 0}  # as the executor: compensate where stale
    configs = [CompensationConfig(compensation if j in stale else "none") for j in range(plan.num_stages)]
    assert isinstance(setup.model, LayeredModel)
    stages = build_stages(setup.model, plan, OptimizerConfig(), configs, ByteLedger())
    data = setup.stream.dataset
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test = torch.from_numpy(data.x_test)
    order = setup.stream.order.tolist()
    ordered = execution_order(rows)
    closes = closing_backwards(rows)
    last = plan.num_stages - 1
    model = setup.model

    def run() -> int:
        carry: dict[int, torch.Tensor] = {}
        labels: dict[int, torch.Tensor] = {}
        pending: list[int] = []
        ops = 0
        for row in ordered:
            kind, sample, worker, stage = row.kind, row.sample, row.worker, row.stage
            if kind == "fwd":
                if stage == 0:
                    o = order[sample]
                    carry[sample], labels[sample] = x[o : o + 1], y[o : o + 1]
                carry[sample] = stages[stage].forward(worker, sample, carry[sample]).output
            elif kind == "bwd":
                if pending and (sample, worker, stage) in closes:
                    _predict(model, x, order, pending)
                    pending = []
                if stage == last:
                    target = labels.pop(sample)
                    result = stages[stage].backward(
                        worker, sample, loss_fn=functools.partial(F.cross_entropy, target=target)
                    )
                else:
                    result = stages[stage].backward(worker, sample, carry[sample])
                carry[sample] = result.grad_input  # type: ignore[assignment]
            elif kind == "recompute":
                stages[stage].recompute(worker, sample)
            elif kind == "arrive":
                pending.append(sample)
                continue
            else:
                continue
            ops += 1
        ops += sum(1 for r in ordered if r.kind == "update")
        _predict(model, x, order, pending)
        with torch.no_grad():
            model(x_test).argmax(1)
        return ops

    return run


def _predict(model: torch.nn.Module, x: torch.Tensor, order: list[int], pending: list[int]) -> None:
    if pending:
        with torch.no_grad():  # mlp and mnistnet compute the same in train and eval mode
            model(x[torch.tensor([order[s] for s in pending])]).argmax(1)


def executor(setup: RunSetup, plan: Plan, rows: list, compensation: str, trace: Path | None) -> Callable[[], int]:
    def run() -> int:
        recorder = FileTrace(trace) if trace is not None else None
        replay = ReplayExecutor(setup, plan, CompensationConfig(compensation), recorder)
        replay.run(rows)
        if recorder is not None:
            recorder.close()
        return replay.ops + sum(replay.updates)

    return run


def cpu_time(run: Callable[[], int]) -> tuple[float, int]:
    start = time.thread_time()
    ops = run()
    return time.thread_time() - start, ops


def measure(model_name: str, strategy: str, compensation: str, data: int, rounds: int, folder: Path) -> dict:
    setup, plan, rows = build(model_name, strategy, data)
    best = {"bare": float("inf"), "executor": float("inf"), "+trace": float("inf")}
    ops = 0
    for _ in range(rounds):
        for name in best:
            case = fresh(setup, model_name)
            if name == "bare":
                run = bare(case, plan, rows, compensation)
            else:
                run = executor(case, plan, rows, compensation, folder / "t.jsonl" if name == "+trace" else None)
            seconds, ops = cpu_time(run)
            best[name] = min(best[name], seconds)
    return {
        "case": f"{model_name} {strategy} P={plan.num_stages} N={len(plan.active_workers)} {compensation}",
        "ops": ops,
        **{k: 1e6 * v / ops for k, v in best.items()},
        "overhead": 1e6 * (best["executor"] - best["bare"]) / ops,
        "overhead_trace": 1e6 * (best["+trace"] - best["bare"]) / ops,
    }


def profile_once(data: int) -> None:
    from pyinstrument import Profiler

    model_name, strategy, compensation = CASES[0]
    setup, plan, rows = build(model_name, strategy, data)
    run = executor(fresh(setup, model_name), plan, rows, compensation, None)
    profiler = Profiler(interval=1e-4)
    profiler.start()
    run()
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=int, default=600, help="arrivals per trace")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the fastest counts")
    parser.add_argument("--profile", action="store_true", help="also print a pyinstrument profile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"replay overhead, {args.data} arrivals, best of {args.rounds} (µs of CPU per op)")
    header = "| case | ops | bare µs/op | executor µs/op | +trace µs/op | overhead µs/op | with trace µs/op |"
    print(header)
    print("|" + " --- |" * 7)
    with tempfile.TemporaryDirectory() as tmp:
        for model_name, strategy, compensation in CASES:
            r = measure(model_name, strategy, compensation, args.data, args.rounds, Path(tmp))
            print(
                f"| {r['case']} | {r['ops']} | {r['bare']:.1f} | {r['executor']:.1f} | {r['+trace']:.1f} | "
                f"{r['overhead']:.1f} | {r['overhead_trace']:.1f} |"
            )
    if args.profile:
        profile_once(args.data)


if __name__ == "__main__":
    main()
