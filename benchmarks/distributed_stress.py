"""Never a hang: many short real-time distributed runs in a row, each under a hard time limit.

    python benchmarks/distributed_stress.py [--runs 60] [--ranks 2,3] [--timeout 120] [--watchdog 30] [--load 0]
                                            [--out DIR]

Each run is a fresh `ferret run --mode distributed --nproc D` (launcher, elastic agent and
ranks, as `ferret deploy`'s probe starts them), of a random mnistnet plan on digits: D ranks
(from `--ranks`), P ≥ D stages cut at random, 1–4 Ferret workers, stage owners as `ferret plan
--devices D` places them, 20–300 data every 0.05–5 ms (log-uniform: from a flood that drops
almost everything to a trickle), vanilla or ER, sometimes `--predict-all`. `--load K` keeps K
busy processes running meanwhile (a loaded host).

A run that outlives `--timeout` is a hang: every process of its session is dumped with
`py-spy dump` (when py-spy is installed) into `DIR/hang-<i>.txt`, then killed. A run that
ends non-zero is a failure (its stderr's last lines are kept in `DIR/fail-<i>.txt`; the
executor's watchdog, `--watchdog` s, ends a stuck rank that way, naming what it waited for,
after dumping its threads' stacks; the launcher's line says how every rank ended). Prints one line
per run and the totals; exits 1 if any run hung or failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from planner.builtin import resolve_profile  # noqa: E402
from planner.placement import owner_placement  # noqa: E402
from planner.plan import Plan, WorkerConfig  # noqa: E402

PROFILE = "builtin:mnistnet-titan-xp"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--ranks", default="2,3", help="rank counts to draw from, e.g. 2,3")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a run may take, start-up included")
    parser.add_argument(
        "--watchdog", type=float, default=30.0, help="the runs' --watchdog: a stuck rank dumps its stacks"
    )
    parser.add_argument("--load", type=int, default=0, help="busy processes to run meanwhile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="where dumps of hung or failed runs go")
    return parser.parse_args(argv)


def random_plan(rng: np.random.Generator, ranks: int, interval_s: float) -> Plan:
    profile = resolve_profile(PROFILE)  # placement only: what a stage costs relative to another
    L = profile.num_layers
    P = int(rng.integers(ranks, L + 1))
    cuts = sorted(rng.choice(np.arange(1, L), size=P - 1, replace=False).tolist())
    partition = (0, *cuts, L)
    N = int(rng.integers(1, 5))
    workers = tuple(
        WorkerConfig(n, False, tuple(int(a) for a in rng.integers(1, 3, size=P)), (0,) * P) for n in range(N)
    )
    placement = owner_placement(profile, partition, N, ranks)
    return Plan("ferret", partition, workers, placement, interval_s, 1.0).validate(L)


def descendants(root: int) -> list[int]:
    """`root` and every live process below it (the launcher, its agent and the ranks, which
    the agent starts in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def dump(pids: list[int]) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    parts = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            continue
        parts.append(f"===== pid {pid}: {cmd}")
        if Path(spy).exists():
            got = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
            parts.append(got.stdout + got.stderr)
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    args = parse(argv)
    rng = np.random.default_rng(args.seed)
    ranks = [int(r) for r in args.ranks.split(",")]
    out = args.out or Path(tempfile.mkdtemp(prefix="ferret-stress-"))
    out.mkdir(parents=True, exist_ok=True)
    profile = out / "profile.json"
    resolve_profile(PROFILE).save(profile)
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]  # spinners
    counts = {"ok": 0, "failed": 0, "hung": 0}
    walls = []
    try:
        with open("/proc/loadavg") as f:
            print(f"load average at start: {f.read().split()[0]}; dumps and failures in {out}", flush=True)
        for i in range(args.runs):
            D = ranks[int(rng.integers(len(ranks)))]
            interval = math.exp(rng.uniform(math.log(5e-5), math.log(5e-3)))
            samples = int(rng.integers(20, 301))
            plan = random_plan(rng, D, interval)
            algorithm = "er" if rng.random() < 0.3 else "vanilla"
            run_dir = Path(tempfile.mkdtemp(prefix=f"run-{i}-", dir=out))
            plan.save(run_dir / "plan.json")
            argv_run = [sys.executable, "-m", "analysis", "run", "--plan", str(run_dir / "plan.json"),
                        "--mode", "distributed", "--nproc", str(D), "--dataset", "digits", "--model", "mnistnet",
                        "--profile", str(profile), "--force", "--samples", str(samples), "--arrival-interval", f"{interval}",
                        "--seed", str(i), "--algorithm", algorithm, "--watchdog", f"{args.watchdog:g}",
                        "--out", str(run_dir / "out")]  # fmt: skip
            if rng.random() < 0.2:
                argv_run.append("--predict-all")
            what = (
                f"run {i:3d}: D={D} P={plan.num_stages} N={plan.num_workers} owners={list(plan.placement[0])} "
                f"{samples} data every {1e3 * interval:.3f} ms {algorithm}"
            )
            started = time.perf_counter()
            process = subprocess.Popen(
                argv_run, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True,
            )  # fmt: skip
            try:
                _, stderr = process.communicate(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                tree = descendants(process.pid)
                (out / f"hang-{i}.txt").write_text(what + "\n" + dump(tree))
                for pid in tree:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                _, stderr = process.communicate()
                (out / f"hang-{i}.stderr.txt").write_text(stderr)
                counts["hung"] += 1
                print(f"{what}: HUNG (> {args.timeout:.0f} s), dump in hang-{i}.txt", flush=True)
                continue
            wall = time.perf_counter() - started
            if process.returncode:
                counts["failed"] += 1
                (out / f"fail-{i}.txt").write_text(what + "\n" + stderr[-40000:])
                last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
                print(f"{what}: FAILED ({process.returncode}) {last}", flush=True)
                continue
            counts["ok"] += 1
            walls.append(wall)
            summary = json.loads((run_dir / "out" / "summary.json").read_text())
            print(f"{what}: ok in {wall:.1f} s, drop rate {summary.get('drop_rate', 0):.2f}", flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        for spinner in load:
            spinner.kill()
    mean = f"{np.mean(walls):.1f}" if walls else "-"
    print(f"{args.runs} runs: {counts['ok']} ok, {counts['failed']} failed, {counts['hung']} hung; mean wall {mean} s")
    return 1 if counts["failed"] or counts["hung"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
