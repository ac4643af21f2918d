"""How fast the twin runs, the whole `ferret simulate` command, and that memory stays flat.

    .venv/bin/python benchmarks/sim_speed.py            # the table, new beside old
    .venv/bin/python benchmarks/sim_speed.py --profile  # plus where the time goes (pyinstrument or cProfile)
    .venv/bin/python benchmarks/sim_speed.py --command-only --against /work/main --rounds 5 [--instructions]

Rows: a 60,000-sample stream through Ferret with P = 4 stages and N = 4 workers — with the
binary trace written (the default), without a trace, with the JSON Lines export — a run of
10^6 ops, and a textbook SimPy model of the same schedule (a process per datum, a
`PriorityResource` per device, no memory ledger or trace) for scale. Then the whole command a
user runs, `ferret simulate` on that plan for 60,000 samples (process start, trace, Chrome view,
memory timeline), in a fresh process — alternated with another checkout's (`--against`, run with
its own `.venv`), and counted in instructions under valgrind (`--instructions`): this machine's
speed swings 1.6× from minute to minute, instructions do not. Then the peak RSS of fresh
processes over stream lengths: it should barely move (only the per-datum result arrays,
`8·(P+1) + 1` bytes per datum, grow).

Each row runs twice: compiled (the modules pyproject.toml's `[tool.ferret] compiled` lists,
built by `bash scripts/setup.sh`; docs/sim.md §6) in this process, and interpreted — the same
source, `FERRET_PURE_PYTHON=1` — in a child process, so the two columns share the machine's
load. "SimPy" is the engine before both (one `Timeout` per op, JSON Lines trace), measured on
this machine when it was idle (issue 14). CPU time is the fair comparison on a loaded machine
(`uptime` is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simpy

from planner.native import PURE_ENV, compiled
from planner.plan import Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile
from sim import FileTrace, SimConfig, simulate

P, N = 4, 4
T_FWD, T_BWD = 1e-3, 2e-3  # per stage: a 3 ms cycle, so data every 0.75 ms keep 4 workers busy
ROOT = Path(__file__).resolve().parents[1]
# The SimPy engine on this machine, idle (µs per op; the whole command in seconds): issue 14.
BEFORE = {"trace": 5.08, "jsonl": 5.08, "none": 3.15, "1e6": 5.9, "textbook": 6.99}
BEFORE_COMMAND = (
    "7.1 s wall idle with the SimPy engine (issue 14); 1.84–2.01 s wall on a quiet machine with the first compiled "
    "core (8.04 G instructions); docs/sim.md §6"
)
PURE = {**os.environ, PURE_ENV: "1"}


def scenario() -> tuple[ModelProfile, Plan, SimConfig]:
    layers = tuple(LayerProfile(f"l{i}", T_FWD / 2, T_BWD / 2, 4096 * (i + 1), 1024 * (i + 1)) for i in range(2 * P))
    profile = ModelProfile("bench", layers, source="synthetic")
    workers = tuple(WorkerConfig.default(n, P) for n in range(N))
    plan = Plan("ferret", tuple(range(0, 2 * P + 1, 2)), workers, default_placement(N, P), (T_FWD + T_BWD) / N)
    return profile, plan, SimConfig(exclusive_devices=True)


def timed_run(samples: int, trace_dir: Path | None, fmt: str = "ftrace") -> dict[str, float]:
    profile, plan, config = scenario()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if trace_dir is None:
        result = simulate(plan, profile, samples, config=config)
        size = 0
    else:
        path = trace_dir / f"trace.{fmt}"
        with FileTrace(path) as trace:
            result = simulate(plan, profile, samples, config=config, trace=trace)
        size = path.stat().st_size
        path.unlink()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"samples": samples, "ops": result.ops, "events": result.events, "wall": wall, "cpu": cpu, "mb": size / 1e6}


def textbook_simpy(samples: int) -> dict[str, float]:
    """The same pipeline written the usual SimPy way, for scale: no ledger, no trace, no versions."""
    env = simpy.Environment()
    devices = [[simpy.PriorityResource(env, capacity=1) for _ in range(P)] for _ in range(N)]
    ops = 0

    def datum(worker: int) -> simpy.events.ProcessGenerator:
        nonlocal ops
        for j in range(P):
            with devices[worker][j].request(priority=1) as req:
                yield req
                yield env.timeout(T_FWD)
                ops += 1
        for j in reversed(range(P)):
            with devices[worker][j].request(priority=0) as req:
                yield req
                yield env.timeout(T_BWD)
                ops += 1

    def source() -> simpy.events.ProcessGenerator:
        for i in range(samples):
            env.process(datum(i % N))
            yield env.timeout((T_FWD + T_BWD) / N)

    env.process(source())
    wall0, cpu0 = time.perf_counter(), time.process_time()
    env.run()
    return {"samples": samples, "ops": ops, "events": 0, "wall": time.perf_counter() - wall0,
            "cpu": time.process_time() - cpu0, "mb": 0.0}  # fmt: skip


def whole_command(samples: int, env: dict[str, str] | None = None, tree: Path = ROOT) -> dict[str, float]:
    """`ferret simulate` in a fresh process of `tree`'s own Python (its `.venv`, or this one), run
    from `tree` so that its sources load: wall and CPU seconds, what it wrote. Bytecode is cached
    as a user's would be (PYTHONDONTWRITEBYTECODE is dropped)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        command = [python_of(tree), *command_args(folder, samples)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=tree, env=user_env(env))
        wall = time.perf_counter() - wall0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sizes = {p.name: p.stat().st_size / 1e6 for p in (folder / "o").iterdir()}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, **sizes}


def python_of(tree: Path) -> str:
    """The checkout's own Python (its `.venv`), else this one."""
    python = tree / ".venv" / "bin" / "python"
    return str(python) if python.exists() else sys.executable


def user_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) as a user's shell has it: bytecode is cached."""
    return {k: v for k, v in (env or os.environ).items() if k != "PYTHONDONTWRITEBYTECODE"}


def command_args(folder: Path, samples: int = 60_000) -> list[str]:
    """`python -m analysis simulate ...` on the benchmark's plan, its inputs saved in `folder`."""
    profile, plan, _ = scenario()
    profile.save(folder / "profile.json")
    plan.save(folder / "plan.json")
    return ["-m", "analysis", "simulate", "--plan", str(folder / "plan.json"), "--profile", str(folder / "profile.json"),
            "--samples", str(samples), "--exclusive-devices", "--out", str(folder / "o")]  # fmt: skip


def command_instructions(tree: Path = ROOT) -> int | None:
    """Instructions the whole command executes (valgrind's callgrind), which do not depend on the
    machine's load or its speed of the minute; None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python_of(tree), *command_args(Path(tmp))]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, cwd=tree, env=user_env(), check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    return int(found.group(1)) if found else None


def command_table(against: Path | None, rounds: int, instructions: bool) -> None:
    """The whole command: compiled and interpreted, and alternated with another checkout's."""
    print(f"\nferret simulate, 60k samples, fresh process (best of {rounds} by CPU; bytecode cached):")
    native = any(not m.endswith("__mypyc") for m in compiled("sim"))
    trees = [("this tree", ROOT)]
    if against is not None:
        trees.append((f"against {against}", against))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for _ in range(rounds):  # alternated, so both see the same minutes of this machine
        for name, tree in trees:
            runs[name].append(whole_command(60_000, tree=tree))
    for name, _ in trees:
        best = min(runs[name], key=lambda r: r["cpu"])
        files = ", ".join(f"{k} {v:.1f} MB" for k, v in best.items() if k not in ("wall", "cpu"))
        walls = sorted(r["wall"] for r in runs[name])
        print(f"  {name:<28} {best['cpu']:.2f} s CPU, {best['wall']:.2f} s wall (walls {walls[0]:.2f}–{walls[-1]:.2f});"
              f" wrote {files}")  # fmt: skip
    if native:
        pure = min((whole_command(60_000, PURE) for _ in range(rounds)), key=lambda r: r["cpu"])
        print(f"  {'this tree, interpreted':<28} {pure['cpu']:.2f} s CPU, {pure['wall']:.2f} s wall")
    if instructions:
        for name, tree in trees:
            count = command_instructions(tree)
            print(f"  {name:<28} {'no valgrind' if count is None else f'{count / 1e9:.2f} G instructions'}")
    print(f"  before: {BEFORE_COMMAND}")


def rss_child(samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        timed_run(samples, Path(tmp))
    # The peak of this program (VmHWM, reset at exec); `ru_maxrss` would also count the pages the
    # process had as a fork of the benchmark before it exec'd.
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    peak = [int(line.split()[1]) for line in lines if line.startswith("VmHWM:")]
    print(peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB


def rss_of(samples: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(samples)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def best_of(repeats: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The run with the least CPU time: other load on the machine only ever adds time."""
    return min((run() for _ in range(repeats)), key=lambda r: r["cpu"])


def row(name: str, r: dict[str, float], pure: dict[str, float] | None, before: float) -> str:
    interpreted = f"{1e6 * pure['cpu'] / pure['ops']:>7.2f}" if pure else f"{'–':>7}"
    return (
        f"{name:<36} {r['samples']:>8,.0f} {r['ops']:>9,.0f} {r['events']:>9,.0f} {r['wall']:>7.2f} {r['cpu']:>7.2f}"
        f" {1e6 * r['wall'] / r['ops']:>7.2f} {1e6 * r['cpu'] / r['ops']:>7.2f} {interpreted} {before:>7.2f}"
        f" {r['mb']:>8.1f}"
    )


def twin_runs(folder: Path) -> dict[str, dict[str, float]]:
    """The twin's rows of the table, best of 3 each."""
    return {
        "trace": best_of(3, lambda: timed_run(60_000, folder)),
        "none": best_of(3, lambda: timed_run(60_000, None)),
        "jsonl": best_of(3, lambda: timed_run(60_000, folder, "jsonl")),
        "1e6": best_of(3, lambda: timed_run(1_000_000 // (2 * P), folder)),
    }


def pure_runs() -> dict[str, dict[str, float]]:
    """`twin_runs` in a child process running the interpreted source."""
    out = subprocess.run(
        [sys.executable, __file__, "--pure-child"], capture_output=True, text=True, check=True, env=PURE
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def profile_run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            from pyinstrument import Profiler
        except ImportError:
            import cProfile
            import pstats

            cProfile.runctx("timed_run(60_000, Path(tmp))", globals(), {"tmp": tmp, "Path": Path}, "sim.prof")
            pstats.Stats("sim.prof").sort_stats("tottime").print_stats(15)
            os.unlink("sim.prof")
            return
        profiler = Profiler()
        profiler.start()
        timed_run(60_000, Path(tmp))
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="also profile the 60k run with its trace")
    parser.add_argument("--against", type=Path, default=None, help="another checkout (with its .venv, e.g. main) "
                        "whose whole command runs alternated with this one's")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process runs of the whole command, each tree")
    parser.add_argument("--instructions", action="store_true", help="also count the whole command's instructions "
                        "under valgrind (minutes)")  # fmt: skip
    parser.add_argument("--command-only", action="store_true", help="only the whole command")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pure-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    if args.pure_child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(twin_runs(Path(tmp))))
        return

    if args.command_only:
        command_table(args.against, args.rounds, args.instructions)
        return
    print(f"ferret twin speed — P={P}, N={N} Ferret, exclusive devices; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    native = [m for m in compiled("sim") if not m.endswith("__mypyc")]
    print(f"compiled: {', '.join(native) if native else 'nothing (pure Python: run bash scripts/setup.sh)'}")
    print("best of 3 runs each (by CPU time); µs/op = seconds per simulated compute op; cpu µs: compiled,")
    print("interpreted (the same source, FERRET_PURE_PYTHON=1) and the SimPy engine before both (idle, issue 14)")
    print(
        f"{'run':<36} {'samples':>8} {'ops':>9} {'rows':>9} {'wall s':>7} {'cpu s':>7} {'µs/op':>7} {'cpu µs':>7}"
        f" {'interp':>7} {'SimPy':>7} {'trace MB':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        runs = twin_runs(Path(tmp))
    pure = pure_runs() if native else {}
    names = {"trace": "60k, binary trace to disk", "none": "60k, no trace", "jsonl": "60k, JSON Lines export",
             "1e6": "10^6 ops, binary trace"}  # fmt: skip
    for key, name in names.items():
        print(row(name, runs[key], pure.get(key), BEFORE[key]))
    textbook = best_of(3, lambda: textbook_simpy(60_000))
    print(row("textbook SimPy (no trace, for scale)", textbook, None, BEFORE["textbook"]))

    command_table(args.against, args.rounds, args.instructions)

    print("\npeak RSS of a fresh process (trace to disk); only the per-datum result arrays grow")
    print(f"{'samples':>8} {'peak RSS MiB':>13} {'of which result arrays MiB':>26}")
    for samples in (7_500, 30_000, 120_000, 480_000):
        arrays = samples * (8 * (P + 1) + 1) / 2**20  # first-update times (P), arrival time, dropped flag
        print(f"{samples:>8,} {rss_of(samples):>13.1f} {arrays:>26.1f}")

    if args.profile:
        profile_run()


if __name__ == "__main__":
    main()
