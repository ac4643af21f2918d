"""Sustained rate: the shortest arrival interval a real run keeps up with, next to the twin's.

    python benchmarks/distributed_rate.py [--nproc 2] [--data 300] [--steps 6] [--lo 0.05ms] [--hi 40ms]

The demo's mnistnet plans (`ferret profile` on this CPU with one thread, `ferret plan --budget
max|min --devices NPROC`: stages on up to NPROC owners) run in real time, one rank per device
the plan uses (gloo, 127.0.0.1), with `--data` digits arriving every `td`. For each plan a geometric bisection over
`td` in [lo, hi] finds the shortest interval at which the run drops < 1 % of the data its
active workers are given (a removed worker's share — M− removes workers — is dropped by the
plan's design, not for want of speed); the
twin, given the same plan, placement, profile and arrivals, is bisected the same way. Printed
per plan: the measured shortest interval, the twin's drop rate at that interval, the twin's own
shortest interval, and at the measured one the run's throughput and latency beside the twin's.

Every probe is a fresh model and stream in one session of ranks (one start-up of torch). The
ranks share the machine's cores with each other and whatever else runs: the load average is
printed, and on 2 cores with 2 ranks plus their wire threads every op also waits for a core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.cli import main as ferret  # noqa: E402
from executor.compensation import CompensationConfig  # noqa: E402
from executor.data import load_dataset  # noqa: E402
from executor.data.stream import Stream  # noqa: E402
from executor.distributed.context import under_launcher  # noqa: E402
from executor.distributed.launch import launch_local  # noqa: E402
from executor.distributed.options import DistributedOptions  # noqa: E402
from executor.distributed.rank import RankRun, Session, run_in_session  # noqa: E402
from executor.models import build_model  # noqa: E402
from executor.ocl.setup import RunSetup  # noqa: E402
from planner.plan import Plan  # noqa: E402
from planner.profile import ModelProfile  # noqa: E402
from sim.arrivals import FixedArrivals  # noqa: E402
from sim.config import SimConfig  # noqa: E402
from sim.simulate import simulate  # noqa: E402
from sim.trace import NullTrace  # noqa: E402

TARGET = 0.01  # drop less than 1 % of the stream


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--data", type=int, default=300)
    parser.add_argument("--steps", type=int, default=6, help="bisection steps per plan")
    parser.add_argument("--lo", type=float, default=0.05e-3, help="shortest interval tried, s")
    parser.add_argument("--hi", type=float, default=40e-3, help="longest interval tried, s")
    parser.add_argument("--work", type=Path, default=None, help="(internal) folder of profile, plans and results")
    parser.add_argument("--plan", type=Path, default=None, help="(internal) the plan this session's ranks run")
    return parser.parse_args(argv)


def bisect(passes, lo: float, hi: float, steps: int) -> float | None:
    """The shortest interval in [lo, hi] that passes (geometric bisection), None if hi fails."""
    if not passes(hi):
        return None
    if passes(lo):
        return lo
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


def routed(plan: Plan, n: int) -> np.ndarray:
    """The data an active worker is given (a removed worker's share is dropped by design)."""
    offsets = {w.offset for w in plan.workers if w.active}
    return np.array([i % plan.num_workers in offsets for i in range(n)])


def twin(plan: Plan, profile: ModelProfile, n: int, td: float) -> dict[str, float]:
    sim = simulate(plan, profile, n, FixedArrivals(td), 0, SimConfig(), NullTrace())
    mask = routed(plan, n)
    return {
        "drop_rate": float(sim.dropped[mask].mean()),
        "throughput_per_s": sim.throughput_per_s,
        "latency_p50_s": sim.latency_quantile(0.5),
    }


def rank_main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    work: Path = args.work

    def body(session: Session) -> None:
        dataset = load_dataset("digits")
        profile = ModelProfile.load(work / "profile.json")
        results = {}
        for plan_file in (args.plan,):
            plan = Plan.load(plan_file)
            measured: dict[float, dict[str, float]] = {}

            def real(td: float, plan: Plan = plan, measured: dict = measured) -> bool:
                order = np.arange(args.data, dtype=np.int64) % len(dataset.y_train)
                arrival = np.arange(args.data) * td
                stream = Stream("rate", dataset, order, arrival, np.zeros(args.data, dtype=np.int64))
                model = build_model("mnistnet", dataset.input_shape, dataset.num_classes, seed=0)
                setup = RunSetup(stream, model, profile, eval_every=0)
                run = RankRun(plan, CompensationConfig(), SimConfig(), DistributedOptions())
                d = session.run(setup, run).details
                drop_rate = (d["dropped"] - d["dropped_removed_worker"]) / int(routed(plan, args.data).sum())
                measured[td] = {"drop_rate": drop_rate, **{k: d[k] for k in ("throughput_per_s", "latency_p50_s")}}
                return drop_rate < TARGET

            shortest = bisect(real, args.lo, args.hi, args.steps)
            twin_shortest = bisect(
                lambda td, plan=plan: twin(plan, profile, args.data, td)["drop_rate"] < TARGET,
                args.lo,
                args.hi,
                args.steps + 4,
            )
            results[plan_file.stem] = {
                "ranks": session.ctx.world_size,
                "P": plan.num_stages,
                "workers": len(plan.active_workers),
                "owners": list(plan.placement[plan.active_workers[0]]),
                "measured_shortest_s": shortest,
                "measured": None if shortest is None else measured[shortest],
                "twin_at_measured": None if shortest is None else twin(plan, profile, args.data, shortest),
                "twin_shortest_s": twin_shortest,
                "probes": {f"{1e3 * td:.3f} ms": m["drop_rate"] for td, m in sorted(measured.items())},
            }
        if session.ctx.rank == 0:
            (work / f"results-{args.plan.stem}.json").write_text(json.dumps(results, indent=1))

    run_in_session(body, "gloo")


def main(argv: list[str]) -> int:
    args = parse(argv)
    if under_launcher():
        return rank_main(args)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        profile = work / "profile.json"
        assert ferret(["profile", "--model", "mnistnet", "--input-shape", "1,8,8", "--out", str(profile)]) == 0
        results = {}
        for budget in ("max", "min"):
            path = work / f"plan-{budget}.json"
            plan = ["plan", "--profile", str(profile), "--budget", budget, "--devices", str(args.nproc)]
            assert ferret([*plan, "--out", str(path)]) == 0
            ranks = Plan.load(path).active_devices  # one rank per device the plan uses (M− may use one)
            launch_local([__file__, *argv, "--work", str(work), "--plan", str(path)], ranks)
            results.update(json.loads((work / f"results-plan-{budget}.json").read_text()))
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.data} data per probe")
    print(
        "| plan | ranks | P | workers | stage owners | shortest td, measured | twin's drops there | twin's shortest td |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        ms = "> hi" if r["measured_shortest_s"] is None else f"{1e3 * r['measured_shortest_s']:.2f} ms"
        twin_drop = "-" if r["twin_at_measured"] is None else f"{100 * r['twin_at_measured']['drop_rate']:.1f} %"
        ts = "> hi" if r["twin_shortest_s"] is None else f"{1e3 * r['twin_shortest_s']:.3f} ms"
        print(f"| {name} | {r['ranks']} | {r['P']} | {r['workers']} | {r['owners']} | {ms} | {twin_drop} | {ts} |")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
