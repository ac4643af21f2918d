"""Sustained rate: the shortest arrival interval a real run keeps up with, next to the twin's.

    python benchmarks/distributed_rate.py [--nproc 2] [--data 300] [--steps 6] [--lo 0.05ms] [--hi 40ms]
                                          [--calibrate-at 2] [--no-calibrate] [--keep DIR]
    python benchmarks/distributed_rate.py --recalibrate DIR [DIR ...]

The demo's mnistnet plans (`ferret profile` on this CPU with one thread, `ferret plan --budget
max|min --devices NPROC`: stages on up to NPROC owners), and the synchronous baseline GPipe on
M+'s stages and owners (the planner's GPipe for M+'s partition, unconstrained: its own
mini-batch; `plan-gpipe`), run in real time, one rank per device
the plan uses (gloo, 127.0.0.1), with `--data` digits arriving every `td`. For each plan a geometric bisection over
`td` in [lo, hi] finds the shortest interval at which the run drops < 1 % of the data its
active workers are given (a removed worker's share — M− removes workers — is dropped by the
plan's design, not for want of speed); the
twin, given the same plan, placement, profile and arrivals, is bisected the same way. Printed
per plan: the measured shortest interval, the twin's drop rate at that interval, the twin's own
shortest interval, and at the measured one the run's throughput and latency beside the twin's.

The calibrated twin (`ferret calibrate`'s library) is what `ferret deploy` relies on: after the
bisection, each plan runs once more, at `--calibrate-at` × its measured shortest interval (hi
if none passed), with its measured trace written to a run folder; the twin calibrated on that
one run (profile, sim_config and fitted costs) is bisected the same way and asked for its drop
rate at the measured shortest interval. The shortest interval is held out of the calibration
(another rate, another run), not out of the plan or the session: one plan's own run at a rate
it keeps up with, as a user would measure before asking for the shortest.

`--keep DIR` keeps the work folder (profile, plans, each plan's calibration run and results);
`--recalibrate DIR...` runs nothing and calibrates again on the runs kept there, with this
tree's `calibrate`: two versions of the calibration compared on the same runs, paired.

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
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.calibrate import calibrate, load_runs  # noqa: E402
from analysis.cli import main as ferret  # noqa: E402
from analysis.run_folder import load_run_folder  # noqa: E402
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
from planner.strategies import make_plan  # noqa: E402
from sim.arrivals import FixedArrivals  # noqa: E402
from sim.config import SimConfig  # noqa: E402
from sim.costs import OpCosts  # noqa: E402
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
    parser.add_argument(
        "--calibrate-at", type=float, default=2.0, help="the calibration run's interval, × the measured shortest"
    )
    parser.add_argument("--no-calibrate", action="store_true", help="the profile-only twin alone")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the profile, plans, calibration runs and results in this folder"
    )
    parser.add_argument(
        "--recalibrate",
        type=Path,
        nargs="+",
        default=None,
        help="no runs: calibrate again on the calibration runs --keep kept in these folders (this tree's calibrate)",
    )
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


def twin(
    plan: Plan, profile: ModelProfile, n: int, td: float, config: SimConfig | None = None, costs: OpCosts | None = None
) -> dict[str, float]:
    sim = simulate(plan, profile, n, FixedArrivals(td), 0, config or SimConfig(), NullTrace(), costs)
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
        plan = Plan.load(args.plan)
        measured: dict[float, dict[str, float]] = {}

        def real(td: float, trace: Path | None = None) -> dict[str, float]:
            order = np.arange(args.data, dtype=np.int64) % len(dataset.y_train)
            arrival = np.arange(args.data) * td
            stream = Stream("rate", dataset, order, arrival, np.zeros(args.data, dtype=np.int64))
            model = build_model("mnistnet", dataset.input_shape, dataset.num_classes, seed=0)
            setup = RunSetup(stream, model, profile, eval_every=0)
            run = RankRun(plan, CompensationConfig(), SimConfig(), DistributedOptions(), measured_trace=trace)
            d = session.run(setup, run).details
            if trace is not None and session.ctx.rank == 0:
                write_run_folder(trace.parent, plan, setup)
            drop_rate = (d["dropped"] - d["dropped_removed_worker"]) / int(routed(plan, args.data).sum())
            return {"drop_rate": drop_rate, **{k: d[k] for k in ("throughput_per_s", "latency_p50_s")}}

        def passes(td: float) -> bool:
            measured[td] = real(td)
            return measured[td]["drop_rate"] < TARGET

        shortest = bisect(passes, args.lo, args.hi, args.steps)
        twin_shortest = bisect(
            lambda td: twin(plan, profile, args.data, td)["drop_rate"] < TARGET, args.lo, args.hi, args.steps + 4
        )
        result = {
            "ranks": session.ctx.world_size,
            "P": plan.num_stages,
            "minibatch": plan.minibatch,
            "workers": len(plan.active_workers),
            "owners": list(plan.placement[plan.active_workers[0]]),
            "measured_shortest_s": shortest,
            "measured": None if shortest is None else measured[shortest],
            "twin_at_measured": None if shortest is None else twin(plan, profile, args.data, shortest),
            "twin_shortest_s": twin_shortest,
            "probes": {f"{1e3 * td:.3f} ms": m["drop_rate"] for td, m in sorted(measured.items())},
        }
        if not args.no_calibrate:  # one more run, its trace in a run folder `ferret calibrate` reads
            td = args.hi if shortest is None else args.calibrate_at * shortest
            folder = work / f"calibration-run-{args.plan.stem}"
            folder.mkdir(exist_ok=True)
            result["calibration_run"] = {"td_s": td, **real(td, folder / "trace.jsonl")}
        if session.ctx.rank == 0:
            (work / f"results-{args.plan.stem}.json").write_text(json.dumps({args.plan.stem: result}, indent=1))

    run_in_session(body, "gloo")


def write_run_folder(folder: Path, plan: Plan, setup: RunSetup) -> None:
    """Beside the measured trace, what `load_run_folder` reads of a `ferret run --mode distributed`
    folder: its mode, its plan and profile, and its optimizer (the calibrated memory model's)."""
    (folder / "summary.json").write_text(json.dumps({"mode": "distributed", "samples": len(setup.stream)}))
    optimizer = {"optimizer": setup.optimizer.name, "momentum": setup.optimizer.momentum}
    (folder / "config.json").write_text(json.dumps(optimizer))
    plan.save(folder / "plan.json")
    setup.profile.save(folder / "profile.json")


def gpipe_plan(mplus_path: Path, profile: Path, nproc: int) -> Plan:
    """The planner's GPipe for M+'s partition, stream and devices (so its stages have M+'s owners)."""
    mplus = Plan.load(mplus_path)
    stream = (mplus.arrival_interval_s, mplus.decay_per_s, None, mplus.value_per_datum)
    result = make_plan("gpipe", ModelProfile.load(profile), *stream, partition=mplus.partition, num_devices=nproc)
    assert result.plan.placement[0] == mplus.placement[mplus.active_workers[0]], "GPipe's owners are not M+'s"
    return result.plan


def calibrated_twin(result: dict, folder: Path, profile: ModelProfile, args: argparse.Namespace) -> None:
    """Calibrate the twin on the plan's one calibration run; bisect it as the plain twin is."""
    run = load_run_folder(folder, "--measured")
    cal = calibrate(load_runs([run], profile), profile)
    plan = run.plan
    costs = cal.costs.check(cal.profile).for_partition(plan.partition)

    def predict(td: float) -> dict[str, float]:
        return twin(plan, cal.profile, args.data, td, cal.sim_config, costs)

    shortest = result["measured_shortest_s"]
    result["calibrated_twin_shortest_s"] = bisect(
        lambda td: predict(td)["drop_rate"] < TARGET, args.lo, args.hi, args.steps + 4
    )
    result["calibrated_twin_at_measured"] = None if shortest is None else predict(shortest)
    result["calibrated_parameters"] = [p.to_json() for p in cal.parameters]  # with how each was fitted
    result["calibrated_layer_times_s"] = {
        "fwd": [layer.t_fwd_s for layer in cal.profile.layers],
        "bwd": [layer.t_bwd_s for layer in cal.profile.layers],
        "profile_fwd": [layer.t_fwd_s for layer in profile.layers],
        "profile_bwd": [layer.t_bwd_s for layer in profile.layers],
    }


def _ms(seconds: float | None, digits: int) -> str:
    return "> hi" if seconds is None else f"{1e3 * seconds:.{digits}f} ms"


def _drops(at: dict | None) -> str:
    return "-" if at is None else f"{100 * at['drop_rate']:.1f} %"


def recalibrate(args: argparse.Namespace) -> int:
    """The calibrated twin of each plan's kept calibration run, with this tree's `calibrate`: old and
    new code on the same runs (pass the kept runs' own --data, --lo, --hi and --steps)."""
    print("| folder | plan | shortest td, measured | calibrated twin's shortest td | link latency | link bandwidth |")
    print("|" + " --- |" * 6)
    for folder in args.recalibrate:
        profile = ModelProfile.load(folder / "profile.json")
        for path in sorted(folder.glob("results-plan-*.json")):
            name = path.stem.removeprefix("results-")
            result = json.loads(path.read_text())[name]
            calibrated_twin(result, folder / f"calibration-run-{name}", profile, args)
            link = {p["name"]: p["value"] for p in result["calibrated_parameters"]}
            bandwidth = link["link_bandwidth_Bps"]
            print(
                f"| {folder} | {name} | {_ms(result['measured_shortest_s'], 2)} | "
                f"{_ms(result['calibrated_twin_shortest_s'], 3)} | {_ms(link['link_latency_s'], 2)} | "
                + ("free" if bandwidth is None else f"{bandwidth / 1e6:.3g} MB/s")
                + " |"
            )
    return 0


def main(argv: list[str]) -> int:
    args = parse(argv)
    if under_launcher():
        return rank_main(args)
    if args.recalibrate:
        return recalibrate(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        profile = work / "profile.json"
        assert ferret(["profile", "--model", "mnistnet", "--input-shape", "1,8,8", "--out", str(profile)]) == 0
        results = {}
        for budget in ("max", "gpipe", "min"):
            path = work / f"plan-{budget}.json"
            if budget == "gpipe":  # the synchronous baseline on M+'s stages and owners
                gpipe_plan(work / "plan-max.json", profile, args.nproc).save(path)
            else:
                plan = ["plan", "--profile", str(profile), "--budget", budget, "--devices", str(args.nproc)]
                assert ferret([*plan, "--out", str(path)]) == 0
            ranks = Plan.load(path).active_devices  # one rank per device the plan uses (M− may use one)
            launch_local([__file__, *argv, "--work", str(work), "--plan", str(path)], ranks)
            results.update(json.loads((work / f"results-plan-{budget}.json").read_text()))
            if not args.no_calibrate:
                folder = work / f"calibration-run-plan-{budget}"
                calibrated_twin(results[f"plan-{budget}"], folder, ModelProfile.load(profile), args)
    print(
        f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.data} data per probe; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    if not args.no_calibrate:
        print(
            f"calibrated twin: fitted on one more run per plan at {args.calibrate_at:g} × its measured shortest td "
            + ("(in sample: that td, another run)" if args.calibrate_at == 1 else "(the shortest td is held out)")
        )
    header = "| plan | ranks | P | workers | stage owners | shortest td, measured | twin's drops there | twin's shortest td |"
    calibrated = " calibrated twin's drops there | calibrated twin's shortest td |"
    print(header + ("" if args.no_calibrate else calibrated))
    print("|" + " --- |" * (8 if args.no_calibrate else 10))
    for name, r in results.items():
        row = (
            f"| {name} | {r['ranks']} | {r['P']} | {r['workers']} | {r['owners']} | {_ms(r['measured_shortest_s'], 2)}"
        )
        row += f" | {_drops(r['twin_at_measured'])} | {_ms(r['twin_shortest_s'], 3)} |"
        if not args.no_calibrate:
            row += f" {_drops(r['calibrated_twin_at_measured'])} | {_ms(r['calibrated_twin_shortest_s'], 3)} |"
        print(row)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
