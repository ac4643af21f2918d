"""How fast the SimPy twin runs, and that its memory stays flat in the stream length.

    .venv/bin/python benchmarks/sim_speed.py            # the table
    .venv/bin/python benchmarks/sim_speed.py --profile  # plus where the time goes (pyinstrument)

Rows: a 60,000-sample stream through Ferret with P = 4 stages and N = 4 workers (the bar:
under 5 s with the trace streamed to disk), the same without a trace, a run of 10^6 ops, and
a textbook SimPy model of the same schedule (a process per datum, a `PriorityResource` per
device, no memory ledger or trace) for comparison. Then the peak RSS of fresh processes over
stream lengths: it should barely move (only the per-datum result arrays, 8·(P+2) bytes per
datum, grow with the stream).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simpy

from planner.plan import Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile
from sim import FileTrace, SimConfig, simulate

P, N = 4, 4
T_FWD, T_BWD = 1e-3, 2e-3  # per stage: a 3 ms cycle, so data every 0.75 ms keep 4 workers busy


def scenario() -> tuple[ModelProfile, Plan, SimConfig]:
    layers = tuple(LayerProfile(f"l{i}", T_FWD / 2, T_BWD / 2, 4096 * (i + 1), 1024 * (i + 1)) for i in range(2 * P))
    profile = ModelProfile("bench", layers, source="synthetic")
    workers = tuple(WorkerConfig.default(n, P) for n in range(N))
    plan = Plan("ferret", tuple(range(0, 2 * P + 1, 2)), workers, default_placement(N, P), (T_FWD + T_BWD) / N)
    return profile, plan, SimConfig(exclusive_devices=True)


def timed_run(samples: int, trace_dir: Path | None) -> dict[str, float]:
    profile, plan, config = scenario()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if trace_dir is None:
        result = simulate(plan, profile, samples, config=config)
        size = 0
    else:
        path = trace_dir / "trace.jsonl"
        with FileTrace(path) as trace:
            result = simulate(plan, profile, samples, config=config, trace=trace)
        size = path.stat().st_size
        path.unlink()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "samples": samples,
        "ops": result.ops,
        "events": result.events,
        "wall": wall,
        "cpu": cpu,
        "mb": size / 2**20,
    }


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


def rss_child(samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        timed_run(samples, Path(tmp))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def rss_of(samples: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(samples)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def best_of(repeats: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The fastest of a few runs (by wall time): other load on the machine only ever adds time."""
    return min((run() for _ in range(repeats)), key=lambda r: r["wall"])


def row(name: str, r: dict[str, float]) -> str:
    rate = r["events"] / r["wall"] if r["events"] else 0.0
    return (
        f"{name:<38} {r['samples']:>8,.0f} {r['ops']:>9,.0f} {r['events']:>9,.0f} {r['wall']:>7.2f} {r['cpu']:>7.2f}"
        f" {1e6 * r['wall'] / r['ops']:>8.2f} {1e6 * r['cpu'] / r['ops']:>8.2f} {rate / 1e3:>9,.0f} {r['mb']:>8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="also profile the 60k run with pyinstrument")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return

    print(
        f"ferret sim speed — P={P}, N={N} Ferret, exclusive devices; python {sys.version.split()[0]}, {os.cpu_count()} cpus"
    )
    print("best of 3 runs each (by wall time); µs/op = seconds per simulated compute op")
    print(
        f"{'run':<38} {'samples':>8} {'ops':>9} {'events':>9} {'wall s':>7} {'cpu s':>7} {'µs/op':>8} {'cpu µs':>8}"
        f" {'kev/s':>9} {'trace MB':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(row("60k samples, trace to disk (bar < 5 s)", best_of(3, lambda: timed_run(60_000, folder))))
        print(row("60k samples, no trace", best_of(3, lambda: timed_run(60_000, None))))
        print(row("10^6 ops, trace to disk", best_of(3, lambda: timed_run(1_000_000 // (2 * P), folder))))
    print(row("textbook SimPy (reference, no trace)", best_of(3, lambda: textbook_simpy(60_000))))

    print("\npeak RSS of a fresh process (trace to disk); only the per-datum result arrays grow")
    print(f"{'samples':>8} {'peak RSS MiB':>13} {'of which result arrays MiB':>26}")
    for samples in (7_500, 30_000, 120_000, 480_000):
        arrays = samples * (8 * (P + 1) + 1) / 2**20  # first-update times (P), arrival time, dropped flag
        print(f"{samples:>8,} {rss_of(samples):>13.1f} {arrays:>26.1f}")

    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        with tempfile.TemporaryDirectory() as tmp:
            profiler.start()
            timed_run(60_000, Path(tmp))
            profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
