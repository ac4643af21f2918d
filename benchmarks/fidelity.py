"""Fidelity on held-out runs: calibrate the twin on one run, predict runs it has not seen.

    python benchmarks/fidelity.py [--source twin|replay|distributed] [--samples 1000] [--interval S] [--out out/fidelity]

mnistnet on digits, profiled on this machine, Ferret plans on `--devices` (2) devices. The twin is
calibrated on the training run (M+, fixed arrivals every td = the slowest layer's forward), then
predicts four held-out runs — another plan (M−), another rate (2·td, planned for it), and other
arrival processes (Poisson, bursty) — first with the profile alone ("before"), then calibrated
("after"). Every run of a case shares one arrival-time file, so predicted and measured see the
same stream. Errors are measured / predicted − 1 (drop rate: points).

Where the measured runs come from is `measure()`, one function per source:

  twin         a hidden 'truth' twin: layer times the profile does not know (× a seeded
               log-normal factor each), per-op overhead, optimizer step, links, jitter. It checks
               the method end to end; its numbers say nothing about real hardware.
  replay       `ferret run --mode replay`: real op costs, but one op at a time, so only op
               durations, drops and memory are compared (docs/FIDELITY.md).
  distributed  `ferret run --mode distributed --nproc D`: the real thing.

Prints the table and writes fidelity.md and fidelity.json to --out.
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from analysis.calibrate import calibrate, load_runs
from analysis.deploy.invoke import invoke
from analysis.output import write_json
from analysis.run_folder import load_run_folder
from analysis.validate import Tolerances, Validation, validate
from planner.placement import owner_placement
from planner.plan import Plan
from planner.profile import ModelProfile
from sim.arrivals import make_arrivals
from sim.config import SimConfig

METRICS = ("throughput_per_s", "latency_p50_s", "drop_rate", "peak_memory_bytes", "adaptation_rate")


@dataclass(frozen=True)
class Case:
    name: str
    budget: str  # "max" (M+) or "min" (M−)
    interval_factor: float  # × td
    arrival: str
    train: bool = False


CASES = (
    Case("train: M+, fixed, td", "max", 1.0, "fixed", train=True),
    Case("other plan: M−", "min", 1.0, "fixed"),
    Case("other rate: 2·td", "max", 2.0, "fixed"),
    Case("other process: Poisson", "max", 1.0, "poisson"),
    Case("other process: bursty", "max", 1.0, "bursty"),
)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.log = self.out / "logs" / "fidelity.log"
        self.profile_path = self.out / "profile" / "profile.json"

    # ------------------------------------------------------------------ inputs
    def profile(self) -> ModelProfile:
        if not self.profile_path.exists():
            argv = ["--model", "mnistnet", "--input-shape", "1,8,8", "--classes", "10", "--out", str(self.profile_path)]
            invoke("profile", argv, self.log)
        return ModelProfile.load(self.profile_path)

    def plan(self, case: Case, td: float) -> Path:
        """`ferret plan` for the case, every stage on one device (a stage's weights live on one rank)."""
        path = self.out / "plans" / f"{case.budget}-{case.interval_factor:g}.json"
        if not path.exists():
            argv = ["--profile", str(self.profile_path), "--budget", case.budget, "--devices", str(self.args.devices)]
            invoke("plan", [*argv, "--arrival-interval", f"{td * case.interval_factor}s", "--out", str(path)], self.log)
            plan = Plan.load(path)
            owned = all(len({plan.placement[n][j] for n in plan.active_workers}) == 1 for j in range(plan.num_stages))
            if not owned:
                profile = ModelProfile.load(self.profile_path)
                placement = owner_placement(profile, plan.partition, plan.num_workers, self.args.devices)
                replace(plan, placement=placement).save(path)
        return path

    def arrivals(self, case: Case, plan: Plan, folder: Path) -> Path:
        """The case's arrival times as a file every run and prediction of the case reads."""
        times = make_arrivals(case.arrival, plan.arrival_interval_s).times(self.args.samples, self.args.seed)
        path = folder / "arrivals.csv"
        path.write_text("t\n" + "\n".join(f"{t:.12g}" for t in times) + "\n")
        return path

    # ------------------------------------------------------------------ runs
    def measure(self, plan: Path, arrivals: Path, out: Path) -> Path:
        """One measured run of `plan` on the stream `arrivals`, from the chosen source."""
        stream = ["--samples", str(self.args.samples), "--arrival", f"trace:{arrivals}", "--seed", str(self.args.seed)]
        if self.args.source == "twin":
            truth = self.truth()
            argv = ["--plan", str(plan), "--profile", str(truth[0]), "--sim-config", str(truth[1]), *stream]
            invoke(
                "simulate", [*argv, "--seed", str(self.args.seed + 1), "--trace-memory", "--out", str(out)], self.log
            )
            shutil.copy(truth[0], out / "profile.json")
        else:
            argv = [
                "--plan",
                str(plan),
                "--mode",
                self.args.source,
                "--dataset",
                "digits",
                "--profile",
                str(self.profile_path),
            ]
            if self.args.source == "distributed":  # one rank per device the plan uses
                argv += ["--nproc", str(len({d for row in Plan.load(plan).placement for d in row}))]
            invoke("run", [*argv, *stream, "--out", str(out)], self.log)
            shutil.copy(self.profile_path, out / "profile.json")
        shutil.copy(plan, out / "plan.json")
        return out

    def truth(self) -> tuple[Path, Path]:
        folder = self.out / "truth"
        profile_path, config_path = folder / "profile.json", folder / "sim_config.json"
        if not profile_path.exists():
            plain = ModelProfile.load(self.profile_path)
            rng = np.random.default_rng(7)
            factors = rng.lognormal(0.0, 0.3, size=(plain.num_layers, 2))
            layers = tuple(
                type(layer)(
                    layer.name,
                    layer.t_fwd_s * f,
                    layer.t_bwd_s * b,
                    layer.param_bytes,
                    layer.act_bytes,
                    layer.fwd_flops,
                )
                for layer, (f, b) in zip(plain.layers, factors, strict=True)
            )
            folder.mkdir(parents=True, exist_ok=True)
            ModelProfile(plain.model, layers, plain.device, plain.batch_size, "synthetic").save(profile_path)
            mean_op = float((plain.t_fwd + plain.t_bwd).mean())
            SimConfig(
                op_overhead_s=0.3 * mean_op,
                update_s=0.2 * mean_op,
                link_latency_s=0.5 * mean_op,
                link_bandwidth_Bps=1e9,
                jitter="lognormal",
                jitter_sigma=0.2,
            ).save(config_path)
        return profile_path, config_path

    def predict(self, plan: Path, arrivals: Path, profile: Path, calibration: Path | None, out: Path) -> Path:
        argv = ["--plan", str(plan), "--profile", str(profile), "--samples", str(self.args.samples)]
        argv += ["--arrival", f"trace:{arrivals}", "--seed", str(self.args.seed), "--trace-memory"]
        if calibration is not None:
            argv += ["--sim-config", str(calibration / "sim_config.json"), "--costs", str(calibration / "costs.json")]
        invoke("simulate", [*argv, "--out", str(out)], self.log)
        shutil.copy(profile, out / "profile.json")
        return out

    # ------------------------------------------------------------------ the benchmark
    def run(self) -> dict[str, object]:
        plain = self.profile()
        td = self.args.interval or float(plain.t_fwd.max())
        folders: dict[str, tuple[Path, Path, Path]] = {}
        for k, case in enumerate(CASES):
            plan_path = self.plan(case, td)
            folder = self.out / f"case-{k}"
            folder.mkdir(parents=True, exist_ok=True)
            arrivals = self.arrivals(case, Plan.load(plan_path), folder)
            started = time.perf_counter()
            measured = self.measure(plan_path, arrivals, folder / "measured")
            print(f"  measured {case.name} ({self.args.source}) in {time.perf_counter() - started:.1f} s", flush=True)
            folders[case.name] = (plan_path, arrivals, measured)
        train = [folders[c.name][2] for c in CASES if c.train]
        calibration = calibrate(load_runs([load_run_folder(p, "--measured") for p in train], plain), plain)
        cal_dir = self.out / "calibration"
        cal_dir.mkdir(exist_ok=True)
        calibration.profile.save(cal_dir / "profile.json")
        calibration.sim_config.save(cal_dir / "sim_config.json")
        calibration.costs.save(cal_dir / "costs.json")
        rows = []
        for k, case in enumerate(CASES):
            plan_path, arrivals, measured = folders[case.name]
            folder = self.out / f"case-{k}"
            before = self.predict(plan_path, arrivals, self.profile_path, None, folder / "before")
            after = self.predict(plan_path, arrivals, cal_dir / "profile.json", cal_dir, folder / "after")
            m = load_run_folder(measured, "--measured")
            rows.append(
                (
                    case,
                    validate(load_run_folder(before, "--predicted"), m),
                    validate(load_run_folder(after, "--predicted"), m),
                )
            )
        return report(rows, self.args, calibration.sim_config)


def _err(v: Validation, name: str) -> float | None:
    m = v.metric(name)
    if m.error is None:
        return None
    return m.error if m.error_unit == "points" else 100 * m.error


def _cell(value: float | None, unit: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.1f}{unit}"


def report(
    rows: list[tuple[Case, Validation, Validation]], args: argparse.Namespace, config: SimConfig
) -> dict[str, object]:
    out: dict[str, object] = {"source": args.source, "samples": args.samples, "devices": args.devices}
    out["cases"] = [
        {"case": case.name, "train": case.train, "before": before.to_json(), "after": after.to_json()}
        for case, before, after in rows
    ]
    out["calibrated_sim_config"] = config.to_json()
    sequential = rows[0][2].measured.clock == "sequential"
    text = durations_table(rows) if sequential else metrics_table(rows, out)
    out["table_markdown"] = text
    return out


def durations_table(rows: list[tuple[Case, Validation, Validation]]) -> str:
    """A replay's timeline is sequential and its schedule is the plain twin's: only op durations say anything."""
    kinds = list(dict.fromkeys(k.kind for _, _, after in rows for k in after.kinds))
    lines = ["| case | " + " | ".join(f"{k} duration, median error before → after" for k in kinds) + " |"]
    lines.append("|" + " --- |" * (len(kinds) + 1))
    for case, before, after in rows:
        b = {k.kind: 100 * k.median_error for k in before.kinds}
        a = {k.kind: 100 * k.median_error for k in after.kinds}
        lines.append(
            f"| {case.name} | " + " | ".join(f"{_cell(b.get(k), ' %')} → {_cell(a.get(k), ' %')}" for k in kinds) + " |"
        )
    return "\n".join(lines) + "\n"


def metrics_table(rows: list[tuple[Case, Validation, Validation]], out: dict[str, object]) -> str:
    tol = Tolerances()
    header = (
        "| case | "
        + " | ".join(f"{n} before → after" for n in METRICS)
        + " | op durations after (median error by kind) |"
    )
    lines = [header, "|" + " --- |" * (len(METRICS) + 2)]
    worst: dict[str, float] = {}
    for case, before, after in rows:
        cells = []
        for n in METRICS:
            unit = " pt" if n == "drop_rate" else " %"
            b, a = _err(before, n), _err(after, n)
            cells.append(f"{_cell(b, unit)} → {_cell(a, unit)}")
            if not case.train and a is not None:
                worst[n] = max(worst.get(n, 0.0), abs(a))
        kinds = ", ".join(f"{k.kind} {100 * k.median_error:+.1f} %" for k in after.kinds)
        lines.append(f"| {case.name} | " + " | ".join(cells) + f" | {kinds} |")
    bar = {
        "throughput_per_s": 100 * tol.throughput,
        "latency_p50_s": 100 * tol.latency_p50,
        "drop_rate": tol.drop_points,
        "peak_memory_bytes": 100 * tol.peak_memory,
    }
    verdicts = [
        f"{n}: worst held-out |error| {worst[n]:.1f}{' pt' if n == 'drop_rate' else ' %'} (bar {bar[n]:g})"
        + (" ok" if worst[n] <= bar[n] else " MISSED")
        for n in bar
        if n in worst
    ]
    out["worst_held_out"] = worst
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {v}" for v in verdicts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("twin", "replay", "distributed"), default="twin")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="td in seconds (default: the slowest layer's forward, as the paper)",
    )
    parser.add_argument("--out", type=Path, default=Path("out/fidelity"))
    args = parser.parse_args()
    args.out = args.out / args.source
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = Bench(args).run()
    print(result["table_markdown"])
    (args.out / "fidelity.md").write_text(str(result["table_markdown"]))
    write_json(args.out / "fidelity.json", result)
    print(
        f"{args.source}: {len(CASES)} runs of {args.samples} samples in {time.perf_counter() - started:.0f} s → {args.out}"
    )


if __name__ == "__main__":
    main()
