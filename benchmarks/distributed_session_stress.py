"""Stress the real-time distributed executor for stalls: many short sessions of many probes.

    python benchmarks/distributed_session_stress.py [--nproc 2] [--sessions 20] [--probes 12] [--data 300]
                                                    [--watchdog 30] [--stuck 20] [--intervals MS,…] [--budgets max,min]
                                                    [--out DIR]

Each session is what `benchmarks/distributed_rate.py` runs (one start-up of torch, then a
fresh model and stream per probe, one after another in one session of ranks): the `max` and
`min` plans of mnistnet on `--nproc` devices, each probe at an interval drawn from
`--intervals` (from the shortest, where every datum but the first few is dropped, to
distributed_rate's longest, 40 ms), every third with a measured trace (the calibration run).
A stalled probe is caught twice: at `--stuck` seconds every rank — the waiting one and the
others, whatever they are doing — dumps all its threads' stacks (faulthandler, which needs no
interpreter lock) below the probe's index and interval in `OUT/probes-s{session}-{plan}-rank{r}.txt`;
at `--watchdog` seconds a waiting rank's watchdog ends the run with its line. Prints one line
per session and the count of failed ones; exit status 1 if any failed. Run it under `nice`
beside other load: load is part of the conditions a stall needs.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import tempfile
import time
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
from planner.errors import FerretError  # noqa: E402
from planner.plan import Plan  # noqa: E402
from planner.profile import ModelProfile  # noqa: E402
from sim.config import SimConfig  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=20, help="sessions per plan")
    parser.add_argument("--probes", type=int, default=12, help="runs per session")
    parser.add_argument("--data", type=int, default=300)
    parser.add_argument("--watchdog", type=float, default=30.0, help="the ranks' --watchdog, s")
    parser.add_argument(
        "--stuck", type=float, default=20.0, help="dump every rank's stacks when a probe lasts this long"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder of the dumps (default: a new temporary one)")
    parser.add_argument(
        "--intervals", default="0.05,0.1,0.2,0.5,1,2,40", help="arrival intervals drawn from, ms, comma-separated"
    )
    parser.add_argument("--budgets", default="max,min", help="the plans' --budget, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="(internal)")
    parser.add_argument("--plan", type=Path, default=None, help="(internal)")
    parser.add_argument("--session", type=int, default=0, help="(internal)")
    return parser.parse_args(argv)


def rank_main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed * 1000 + args.session)
    tds = [1e-3 * float(rng.choice([float(v) for v in args.intervals.split(",")])) for _ in range(args.probes)]

    def body(session: Session) -> None:
        rank = session.ctx.rank
        dataset = load_dataset("digits")
        profile = ModelProfile.load(args.work / "profile.json")
        plan = Plan.load(args.plan)
        dump = open(args.out / f"probes-s{args.session}-{args.plan.stem}-rank{rank}.txt", "w")  # noqa: SIM115
        for k, td in enumerate(tds):
            trace = args.work / f"trace-{args.plan.stem}-{k}.jsonl" if k % 3 == 2 else None
            dump.write(f"probe {k} of {len(tds)}, td {1e3 * td:.3f} ms, trace {trace is not None}\n")
            dump.flush()
            faulthandler.dump_traceback_later(args.stuck, file=dump)
            order = np.arange(args.data, dtype=np.int64) % len(dataset.y_train)
            stream = Stream("stress", dataset, order, np.arange(args.data) * td, np.zeros(args.data, dtype=np.int64))
            model = build_model("mnistnet", dataset.input_shape, dataset.num_classes, seed=k)
            setup = RunSetup(stream, model, profile, eval_every=0)
            options = DistributedOptions(watchdog_s=args.watchdog)
            session.run(setup, RankRun(plan, CompensationConfig(), SimConfig(), options, measured_trace=trace))
            faulthandler.cancel_dump_traceback_later()
        dump.close()

    run_in_session(body, "gloo")


def main(argv: list[str]) -> int:
    args = parse(argv)
    if under_launcher():
        rank_main(args)
    out = args.out or Path(tempfile.mkdtemp(prefix="ferret-stress-"))
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        profile = work / "profile.json"
        assert ferret(["profile", "--model", "mnistnet", "--input-shape", "1,8,8", "--out", str(profile)]) == 0
        plans = []
        for budget in args.budgets.split(","):
            path = work / f"plan-{budget}.json"
            plan = ["plan", "--profile", str(profile), "--budget", budget, "--devices", str(args.nproc)]
            assert ferret([*plan, "--out", str(path)]) == 0
            plans.append(path)
        for s in range(args.sessions):
            for path in plans:
                ranks = Plan.load(path).active_devices
                rest = ["--work", str(work), "--plan", str(path), "--session", str(s), "--out", str(out)]
                started = time.perf_counter()
                try:
                    launch_local([__file__, *argv, *rest], ranks)
                    verdict = "ok"
                except FerretError as exc:
                    failures += 1
                    verdict = f"FAILED: {exc}"
                line = {"session": s, "plan": path.stem, "ranks": ranks, "s": round(time.perf_counter() - started, 1)}
                print(json.dumps(line), f"load {os.getloadavg()[0]:.1f}", verdict, flush=True)
    print(f"{failures} failed session(s) of {len(plans) * args.sessions}; dumps in {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
