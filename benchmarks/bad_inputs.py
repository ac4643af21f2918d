"""Sixty hand-made bad or edge inputs across every command, each run as a user would run it.

    .venv/bin/python benchmarks/bad_inputs.py [--jobs 2] [--only NAME_PREFIX] [--json OUT.json]
        [--held-out | --main-added]

Each case runs `python -m analysis ...` in a fresh folder holding copies of a few artifacts
(profiles, plans, a simulation folder, run folders) and is judged on what a user would see:

- PASS: as DESIGN.md promises. A refusal is exit 2 with one line on stderr, no traceback, and
  not one byte of the folder changed; a success changed nothing it was told to protect and left
  no file of an earlier run beside its own (nor a hidden staging folder).
- TRACEBACK, MULTILINE (an error of more than one line), HANG (past the case's time limit),
  ACCEPTED (ran what it should have refused), REFUSED (refused what should run), WROTE (wrote
  or changed files although it refused), CLOBBERED (changed a file it was told to protect),
  MIXED (an output folder holds files of two runs, or a staging folder was left behind).

The classes (1-8) are those of issue 13. Prints one row per case and the count per outcome.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FERRET = [sys.executable, "-m", "analysis"]
ENV = {**os.environ, "CI": "1", "PYTHONPATH": str(ROOT)}


@dataclass
class Result:
    code: int | None
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Case:
    name: str
    cls: int
    argv: list[str] = field(default_factory=list)
    expect: str = "refuse"  # or "ok", or "either" (exit 0 or a one-line refusal)
    setup: Callable[[Path], None] | None = None
    protect: tuple[str, ...] = ()  # paths whose bytes must survive a success
    gone: tuple[str, ...] = ()  # paths an earlier run left that a success must remove
    check: Callable[[Path, Result], str | None] | None = None  # extra judgement of a success
    custom: Callable[[Path], tuple[str, str]] | None = None  # runs the case itself → (outcome, note)
    timeout: float = 90.0


# ----------------------------------------------------------------------------- running


def ferret(argv: list[str], cwd: Path, timeout: float) -> Result:
    started = time.perf_counter()
    try:
        proc = subprocess.run(FERRET + argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Result(None, out, err, time.perf_counter() - started)
    return Result(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (hidden ones too) → a hash of its bytes ('dir' for folders)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def partials(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".partial")]


def judge(case: Case, folder: Path) -> tuple[str, str, float]:
    if case.setup is not None:
        case.setup(folder)
    if case.custom is not None:
        started = time.perf_counter()
        outcome, note = case.custom(folder)
        return outcome, note, time.perf_counter() - started
    before = snapshot(folder)
    res = ferret(case.argv, folder, case.timeout)
    after = snapshot(folder)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    note = lines[-1][:110] if lines else res.stdout.strip().splitlines()[-1][:110] if res.stdout.strip() else ""
    if res.code is None:
        return "HANG", note, res.seconds
    if "Traceback" in res.stderr:
        return "TRACEBACK", note, res.seconds
    if res.code not in (0, 2):
        return f"EXIT{res.code}", note, res.seconds
    if res.code == 2 and len(lines) > 1:
        return "MULTILINE", note, res.seconds
    if case.expect == "either" and res.code == 2:
        return ("PASS" if after == before else "WROTE"), note, res.seconds
    if case.expect == "refuse":
        if res.code == 0:
            return "ACCEPTED", note, res.seconds
        return ("PASS" if after == before else "WROTE"), note, res.seconds
    if res.code != 0:
        return "REFUSED", note, res.seconds
    if any(before.get(p) != after.get(p) for p in case.protect):
        return "CLOBBERED", note, res.seconds
    if any((folder / p).exists() for p in case.gone) or partials(folder):
        return "MIXED", note, res.seconds
    if case.check is not None and (verdict := case.check(folder, res)) is not None:
        return verdict, note, res.seconds
    return "PASS", note, res.seconds


# ----------------------------------------------------------------------------- fixtures


def make_fixtures(base: Path, main_added: bool = False) -> None:
    """Profiles, plans, a simulation and run folders every case starts from (made by ferret itself)."""
    steps = [
        ["profile", "--model", "mnistnet", "--input-shape", "1,8,8", "--device", "roofline:h100", "--out", "p.json"],
        ["profile", "--model", "mnistnet", "--device", "roofline:h100", "--out", "p28/p28.json"],
        [
            "profile",
            "--model",
            "mnistnet",
            "--input-shape",
            "1,8,8",
            "--classes",
            "100",
            "--device",
            "roofline:h100",
            "--out",
            "p100/p100.json",
        ],
        ["profile", "--model", "mlp", "--input-shape", "64", "--device", "roofline:h100", "--out", "mlp/mlp.json"],
        ["plan", "--profile", "p.json", "--out", "plan.json"],
        ["plan", "--profile", "mlp/mlp.json", "--out", "mlp/plan_mlp.json"],
        ["simulate", "--plan", "plan.json", "--profile", "p.json", "--samples", "200", "--out", "sim"],
        ["run", "--profile", "p.json", "--samples", "60", "--out", "run"],
        ["run", "--plan", "plan.json", "--profile", "p.json", "--samples", "60", "--out", "run_pipe"],
        ["run", "--dataset", "synthetic", "--profile", "p.json", "--samples", "60", "--out", "synth_run"],
    ]
    if main_added:  # what the cases of the commands main added start from
        steps += [
            ["simulate", "--plan", "plan.json", "--profile", "p.json", "--samples", "60", "--out", "sim60"],
            ["plan", "--profile", "p.json", "--devices", "2", "--out", "plan2.json"],
            ["calibrate", "--measured", "run_pipe", "--profile", "p.json", "--out", "cal"],
        ]
    for argv in steps:
        res = ferret(argv, base, 300)
        if res.code != 0:
            raise SystemExit(f"fixture {' '.join(argv)} failed: {res.stderr.strip()[-400:]}")
    for leftover in ("config.json", "summary.json"):  # what profile wrote beside p.json, if anything
        (base / leftover).unlink(missing_ok=True)


def write(rel: str, text: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return setup


def edit_json(src: str, dest: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        obj = json.loads((folder / src).read_text())
        change(obj)
        (folder / dest).write_text(json.dumps(obj))

    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        for s in setups:
            s(folder)

    return setup


def copy(src: str, dest: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / src, folder / dest)

    return setup


def _set_layers(key: str, value: object, count: int = 2) -> Callable[[dict], None]:
    def change(obj: dict) -> None:
        for layer in obj["layers"][:count]:
            layer[key] = value

    return change


# ----------------------------------------------------------------------------- custom cases


def kill_case(argv: list[str], out: str, sig: signal.Signals, wait_s: float = 4.0) -> Callable[[Path], tuple[str, str]]:
    """Send `sig` while the command works; the old `out` must survive byte for byte, a SIGINT or
    SIGTERM must say so in one line, and no staging folder may outlive the next run."""

    def run(folder: Path) -> tuple[str, str]:
        before = {k: v for k, v in snapshot(folder).items() if k.startswith(out + "/")}
        proc = subprocess.Popen(FERRET + argv, cwd=folder, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not partials(folder) and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(wait_s if not partials(folder) else 1.0)
        if proc.poll() is not None:
            return "OTHER", f"ended (exit {proc.returncode}) before the signal: " + proc.communicate()[1].decode()[-80:]
        proc.send_signal(sig)
        try:
            _, err_b = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "HANG", f"{sig.name} did not stop it"
        err = err_b.decode()
        after = {k: v for k, v in snapshot(folder).items() if k.startswith(out + "/")}
        if after != before:
            return "CLOBBERED", f"{out} changed after {sig.name}"
        if "Traceback" in err:
            return "TRACEBACK", err.strip().splitlines()[-1][:110]
        lines = [line for line in err.splitlines() if line.strip()]
        if sig != signal.SIGKILL and len(lines) != 1:
            return ("MULTILINE" if lines else "SILENT"), f"{sig.name}: {len(lines)} stderr lines"
        follow = ferret(
            ["simulate", "--plan", "plan.json", "--profile", "p.json", "--samples", "20", "--out", out], folder, 60
        )
        left = partials(folder)
        if follow.code != 0:
            return "REFUSED", follow.stderr.strip()[-110:]
        return ("MIXED", f"left {left[0]}") if left else ("PASS", f"{sig.name}: " + (lines[0][:90] if lines else ""))

    return run


def concurrent_case(folder: Path) -> tuple[str, str]:
    """Two writers of one folder at once: one must fail clearly (or wait); the folder ends up as one run."""
    a = ["simulate", "--plan", "plan.json", "--profile", "p.json", "--samples", "40000", "--out", "shared"]
    b = ["simulate", "--plan", "plan.json", "--profile", "p.json", "--samples", "30000", "--trace-format", "csv"]
    b += ["--out", "shared"]
    pa = subprocess.Popen(FERRET + a, cwd=folder, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    pb = subprocess.Popen(FERRET + b, cwd=folder, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ea, eb = pa.communicate(timeout=240)[1].decode(), pb.communicate(timeout=240)[1].decode()
    if "Traceback" in ea + eb:
        return "TRACEBACK", (ea + eb).strip().splitlines()[-1][:110]
    files = sorted(p.name for p in (folder / "shared").iterdir()) if (folder / "shared").is_dir() else []
    config = json.loads((folder / "shared" / "config.json").read_text()) if "config.json" in files else {}
    summary = json.loads((folder / "shared" / "summary.json").read_text()) if "summary.json" in files else {}
    if "trace.ftrace" in files and "trace.csv" in files:
        return "MIXED", "trace.ftrace and trace.csv in one folder"
    if config.get("samples") != summary.get("samples"):
        return "MIXED", f"config says {config.get('samples')} samples, summary {summary.get('samples')}"
    if pa.returncode == 0 and pb.returncode == 0:
        return "PASS", "both succeeded, one after the other"
    failed = eb if pb.returncode else ea
    lines = [line for line in failed.splitlines() if line.strip()]
    return ("PASS" if len(lines) == 1 else "MULTILINE"), lines[0][:110] if lines else ""


def help_example_case(folder: Path) -> tuple[str, str]:
    """The example `ferret run --help` gives for --dataset-option must run as shown."""
    shown = ferret(["run", "--help"], folder, 60).stdout
    match = re.search(r"e\.g\.\s+(\S+=\S+)\s+for\s+synthetic", " ".join(shown.split()))
    if match is None:
        return "MISLEADING", "no synthetic example in --help"
    argv = ["run", "--dataset", "synthetic", "--dataset-option", match.group(1), "--samples", "30", "--out", "r2"]
    res = ferret(argv, folder, 300)
    if "Traceback" in res.stderr:
        return "TRACEBACK", res.stderr.strip().splitlines()[-1][:110]
    if res.code != 0:
        return "REFUSED", f"{match.group(1)}: " + res.stderr.strip()[-100:]
    return "PASS", f"{match.group(1)} runs"


def repeat_check(folder: Path, res: Result) -> str | None:
    ignore = {"wall_s", "run_wall_s", "baseline"}
    first = {k: v for k, v in json.loads((folder / "run" / "summary.json").read_text()).items() if k not in ignore}
    again = {k: v for k, v in json.loads((folder / "again" / "summary.json").read_text()).items() if k not in ignore}
    diff = sorted(k for k in first.keys() | again.keys() if first.get(k) != again.get(k))
    return f"DIFFERENT ({', '.join(diff[:4])})" if diff else None


def measured_once_check(folder: Path, res: Result) -> str | None:
    if (folder / "m" / "profile.json").exists() or "reproduc" in res.stdout + res.stderr:
        return None
    return "SILENT"


def no_spec_in_help(folder: Path, res: Result) -> str | None:
    return "MISLEADING" if "SPEC" in res.stdout else None


# ----------------------------------------------------------------------------- the cases

SIM = ["simulate", "--plan", "plan.json", "--profile", "p.json", "--samples", "50"]
RUN = ["run", "--profile", "p.json", "--samples", "30"]
WHATIF = ["whatif", "--profile", "p.json", "--strategies", "ferret", "--samples", "50", "--jobs", "1"]
LONG_NAME = "x" * 300

CASES = [
    # 1: outputs clobber what the user owns
    Case(
        "profile-beside-user-files",
        1,
        ["profile", "--model", "mlp", "--device", "roofline:h100", "--out", "d/prof.json"],
        "ok",
        write("d/config.json", '{"mine": 1}\n'),
        protect=("d/config.json",),
    ),
    Case("plan-out-is-its-profile", 1, ["plan", "--profile", "p.json", "--out", "p.json"]),
    Case(
        "plan-sibling-is-its-profile",
        1,
        ["plan", "--profile", "x.summary.json", "--out", "x.json"],
        setup=copy("p.json", "x.summary.json"),
    ),
    Case(
        "simulate-out-holds-its-plan",
        1,
        ["simulate", "--plan", "d/plan.json", "--profile", "p.json", "--out", "d"],
        setup=copy("plan.json", "d/plan.json"),
    ),
    Case(
        "simulate-out-holds-its-trace",
        1,
        [*SIM, "--arrival", "trace:d/a.csv", "--out", "d"],
        setup=write("d/a.csv", "t\n" + "\n".join(str(i / 1000) for i in range(60)) + "\n"),
    ),
    Case(
        "whatif-into-user-folder",
        1,
        [*WHATIF, "--budgets", "1MiB", "--out", "notes"],
        setup=write("notes/thesis.txt", "three years of work\n"),
    ),
    Case("run-out-is-cwd", 1, [*RUN, "--out", "."]),
    Case("run-out-is-its-baseline", 1, [*RUN, "--baseline", "run", "--out", "run"]),
    # 2: reused and shared output folders mix runs
    Case(
        "simulate-csv-into-jsonl-folder",
        2,
        [*SIM, "--trace-format", "csv", "--out", "sim"],
        "ok",
        gone=("sim/trace.ftrace",),
    ),
    Case(
        "whatif-into-sim-folder",
        2,
        [*WHATIF, "--budgets", "1MiB", "--out", "sim"],
        "ok",
        gone=("sim/trace.ftrace", "sim/memory_timeline.csv"),
    ),
    Case("oracle-into-pipeline-run", 2, [*RUN, "--out", "run_pipe"], "ok", gone=("run_pipe/trace.jsonl",)),
    Case(
        "stale-partial-of-dead-writer",
        2,
        [*SIM, "--out", "sim"],
        "ok",
        write(".sim.k1ll3d.partial/trace.ftrace", "{}\n"),
        gone=(".sim.k1ll3d.partial",),
    ),
    Case("two-writers-one-folder", 2, custom=concurrent_case),
    Case(
        "sigterm-during-whatif",
        2,
        # 20,000 samples per point: the sweep must still be working when the signal comes (at 50 it
        # could finish within the second the case waits, and then replacing `sim` is right).
        custom=kill_case(
            [*WHATIF[:-3], "20000", "--jobs", "1", "--budgets", "64KiB:64MiB:x1.1", "--out", "sim"],
            "sim",
            signal.SIGTERM,
        ),
    ),
    Case("sigkill-during-simulate", 2, custom=kill_case([*SIM[:-1], "1000000", "--out", "sim"], "sim", signal.SIGKILL)),
    Case("sigint-during-run", 2, custom=kill_case([*RUN[:-1], "2000000", "--out", "run"], "run", signal.SIGINT)),
    # 3: numeric extremes escape validation
    Case("budget-beyond-int64", 3, ["plan", "--profile", "p.json", "--budget", "1e25GiB", "--out", "q.json"]),
    Case("interval-subnormal", 3, ["plan", "--profile", "p.json", "--arrival-interval", "1e-320s", "--out", "q.json"]),
    Case("value-near-float-max", 3, ["plan", "--profile", "p.json", "--value", "1e308", "--out", "q.json"]),
    Case("negative-sim-seed", 3, [*SIM, "--seed", "-5", "--out", "s2"]),
    Case("time-scale-huge", 3, [*SIM, "--time-scale", "1e300", "--out", "s2"]),
    Case("optimizer-ratio-huge", 3, [*SIM, "--optimizer-state-ratio", "1e300", "--out", "s2"]),
    Case("jitter-sigma-40", 3, [*SIM, "--jitter", "40", "--out", "s2"]),
    Case("link-bandwidth-tiny", 3, [*SIM, "--link-bandwidth", "1e-300", "--out", "s2"]),
    Case(
        "profile-bytes-sum-overflows",
        3,
        ["plan", "--profile", "big.json", "--out", "q.json"],
        setup=edit_json("p.json", "big.json", _set_layers("param_bytes", 2**62)),
    ),
    Case(
        "profile-time-subnormal",
        3,
        ["plan", "--profile", "tiny.json", "--out", "q.json"],
        setup=edit_json("p.json", "tiny.json", _set_layers("t_fwd_s", 5e-324, 4)),
    ),
    Case(
        "plan-device-1e8",
        3,
        ["simulate", "--plan", "far.json", "--profile", "p.json", "--samples", "20", "--out", "s2"],
        setup=edit_json("plan.json", "far.json", lambda o: o["placement"][0].__setitem__(0, 10**8)),
    ),
    Case(
        "plan-accumulation-1e18",
        3,
        ["simulate", "--plan", "acc.json", "--profile", "p.json", "--samples", "20", "--out", "s2"],
        setup=edit_json("plan.json", "acc.json", lambda o: o["workers"][0]["accumulation"].__setitem__(0, 10**18)),
    ),
    Case(
        "sim-config-update-1e308",
        3,
        [*SIM, "--sim-config", "cfg.json", "--out", "s2"],
        setup=write("cfg.json", '{"update_s": 1e308}'),
    ),
    Case("buffer-rounds-to-zero", 3, [*RUN, "--buffer", "0.3B", "--out", "r2"]),
    Case("run-seed-beyond-uint64", 3, [*RUN, "--seed", "99999999999999999999", "--out", "r2"]),
    # 4: unbounded work hangs
    Case("budget-grid-step-one-byte", 4, [*WHATIF, "--budgets", "1B:1GiB:+1B", "--out", "w"], timeout=60),
    Case("budget-grid-ratio-1e-7", 4, [*WHATIF, "--budgets", "1MiB:1TiB:x1.0000001", "--out", "w"], timeout=60),
    Case("budget-auto-1e9", 4, [*WHATIF, "--budgets", "auto:1000000000", "--out", "w"], timeout=60),
    Case(
        "interval-one-ns",
        4,
        ["plan", "--profile", "p.json", "--arrival-interval", "1ns", "--out", "q.json"],
        timeout=60,
    ),
    Case("samples-2e9", 4, [*SIM[:-1], "2000000000", "--out", "s2"], timeout=60),
    Case("devices-1e8", 4, ["plan", "--profile", "p.json", "--devices", "100000000", "--out", "q.json"], timeout=60),
    Case(
        "input-shape-2e9",
        4,
        ["profile", "--model", "mlp", "--input-shape", "2000000000", "--out", "q.json"],
        timeout=60,
    ),
    Case(
        "synthetic-train-size-2e9",
        4,
        [
            "run",
            "--dataset",
            "synthetic",
            "--dataset-option",
            "train_size=2000000000",
            "--profile",
            "p.json",
            "--out",
            "r2",
        ],
        timeout=60,
    ),
    # 5: mismatched artifacts run silently
    Case(
        "run-plan-of-other-model",
        5,
        ["run", "--plan", "mlp/plan_mlp.json", "--profile", "p.json", "--samples", "30", "--out", "r2"],
    ),
    Case(
        "simulate-plan-of-other-model",
        5,
        ["simulate", "--plan", "mlp/plan_mlp.json", "--profile", "p.json", "--samples", "30", "--out", "s2"],
    ),
    Case("profile-28x28-for-8x8-stream", 5, ["run", "--profile", "p28/p28.json", "--samples", "30", "--out", "r2"]),
    Case("profile-100-classes-for-10", 5, ["run", "--profile", "p100/p100.json", "--samples", "30", "--out", "r2"]),
    Case("baseline-other-dataset", 5, [*RUN, "--baseline", "synth_run", "--out", "r2"]),
    Case("roofline-device-with-profile", 5, [*RUN, "--device", "roofline:h100", "--out", "r2"]),
    # 6: determinism
    Case("repeat-of-a-run", 6, ["run", "--repeat-of", "run", "--out", "again"], "ok", check=repeat_check),
    Case(
        "measured-profile-recorded",
        6,
        ["run", "--samples", "30", "--cost-batch", "1", "--out", "m"],
        "ok",
        check=measured_once_check,
    ),
    # 7: tracebacks that should be one line
    Case(
        "stream-option-not-a-number",
        7,
        [*RUN, "--stream", "class-incremental", "--stream-option", "tasks=abc", "--out", "r2"],
    ),
    Case(
        "stream-option-zero-tasks",
        7,
        [*RUN, "--stream", "class-incremental", "--stream-option", "tasks=0", "--out", "r2"],
    ),
    Case("digits-test-fraction-1.5", 7, [*RUN, "--dataset-option", "test_fraction=1.5", "--out", "r2"]),
    Case("blurry-negative-sigma", 7, [*RUN, "--stream", "blurry", "--stream-option", "sigma=-1", "--out", "r2"]),
    Case(
        "covertype-string-labels",
        7,
        ["run", "--dataset", "covertype", "--data-root", "cov", "--model", "mlp", "--out", "r2"],
        setup=write("cov/covtype.data", ",".join(["1"] * 54) + ",spruce\n"),
    ),
    Case(
        "arrival-trace-header-only", 7, [*SIM, "--arrival", "trace:h.csv", "--out", "s2"], setup=write("h.csv", "t\n")
    ),
    Case("out-name-too-long", 7, [*SIM, "--out", LONG_NAME]),
    Case(
        "out-under-a-file", 7, ["plan", "--profile", "p.json", "--out", "f.txt/plan.json"], setup=write("f.txt", "x\n")
    ),
    Case("out-not-writable", 7, [*SIM, "--out", "/sys/ferret-out"]),
    Case("cuda-on-cpu-torch", 7, [*RUN, "--device", "cuda", "--out", "r2"]),
    # 8: help that misleads
    Case("version-flag", 8, ["--version"], "ok"),
    Case("help-example-of-dataset-option", 8, custom=help_example_case),
    Case("simulate-help-cites-spec", 8, ["simulate", "--help"], "ok", check=no_spec_in_help),
    Case("run-help-cites-spec", 8, ["run", "--help"], "ok", check=no_spec_in_help),
]

# Written after the mechanisms were in place and run once, unchanged: a held-out check.
HELD_OUT = [
    Case("compare-out-inside-an-input", 1, ["compare", "run", "synth_run", "--force", "--out", "run/cmp"]),
    Case("simulate-out-is-its-plan-file", 1, [*SIM, "--out", "plan.json"]),
    Case(
        "whatif-replaces-a-run-folder",
        2,
        [*WHATIF, "--budgets", "1MiB", "--out", "run"],
        "ok",
        gone=("run/metrics.csv", "run/accuracy.png"),
    ),
    Case(
        "out-with-trailing-slash", 2, [*SIM, "--trace-format", "csv", "--out", "sim/"], "ok", gone=("sim/trace.ftrace",)
    ),
    Case("decay-beyond-1e12", 3, ["plan", "--profile", "p.json", "--decay", "1e20/s", "--out", "q.json"]),
    Case("learning-rate-1e14", 3, [*RUN, "--lr", "1e14", "--out", "r2"], "either"),
    Case(
        "profile-negative-activation",
        3,
        ["plan", "--profile", "neg.json", "--out", "q.json"],
        setup=edit_json("p.json", "neg.json", _set_layers("act_bytes", -5, 1)),
    ),
    Case(
        "plan-partition-1e18",
        3,
        ["simulate", "--plan", "part.json", "--profile", "p.json", "--out", "s2"],
        setup=edit_json("plan.json", "part.json", lambda o: o.__setitem__("partition", [0, 10**18])),
    ),
    Case("link-latency-1e10", 3, [*SIM, "--link-latency", "1e10", "--out", "s2"]),
    Case("intervals-with-one-ns", 4, [*WHATIF, "--budgets", "1MiB", "--intervals", "1us,1ns", "--out", "w"]),
    Case(
        "roofline-batch-1e6",
        4,
        ["profile", "--model", "resnet18", "--batch", "1000000", "--device", "roofline:h100", "--out", "q.json"],
    ),
    Case("run-samples-1e9", 4, [*RUN[:-1], "999999999", "--out", "r2"], timeout=60),
    Case(
        "simulate-28x28-profile-for-8x8-plan",
        5,
        ["simulate", "--plan", "plan.json", "--profile", "p28/p28.json", "--out", "s2"],
    ),
    Case(
        "run-plan-with-100-class-profile",
        5,
        ["run", "--plan", "plan.json", "--profile", "p100/p100.json", "--samples", "30", "--out", "r2"],
    ),
    Case("repeat-of-a-sim-folder", 6, ["run", "--repeat-of", "sim", "--out", "r2"]),
    Case("mnist-without-files", 7, ["run", "--dataset", "mnist", "--data-root", "nowhere", "--out", "r2"]),
    Case("sim-config-is-a-plan", 7, [*SIM, "--sim-config", "plan.json", "--out", "s2"]),
    Case(
        "stream-option-1e999",
        7,
        [*RUN, "--stream", "class-incremental", "--stream-option", "tasks=1e999", "--out", "r2"],
    ),
    Case("plan-profile-is-a-folder", 7, ["plan", "--profile", "sim", "--out", "q.json"]),
    Case("update-time-zero-as-help-allows", 8, [*SIM, "--update-time", "0", "--out", "s2"], "ok"),
]


def _other_model(folder: Path) -> None:
    """run_mlp: a copy of run_pipe whose summary says it ran mlp."""
    shutil.copytree(folder / "run_pipe", folder / "run_mlp")
    path = folder / "run_mlp" / "summary.json"
    summary = json.loads(path.read_text())
    summary["provenance"]["model"] = "mlp"
    path.write_text(json.dumps(summary))


VALIDATE = ["validate", "--predicted", "sim60", "--measured", "run_pipe"]
CALIBRATE = ["calibrate", "--measured", "run_pipe"]
DIST = [
    "run",
    "--plan",
    "plan2.json",
    "--profile",
    "p.json",
    "--mode",
    "distributed",
    "--nproc",
    "2",
    "--samples",
    "20",
]

# Written for the commands and flags main added after the cases above (validate, calibrate,
# deploy, run --mode distributed, budgeted OCL), before they were hardened (`--main-added`).
MAIN_ADDED = [
    Case("validate-out-is-its-measured-run", 1, [*VALIDATE, "--out", "run_pipe"]),
    Case("validate-out-inside-its-prediction", 1, [*VALIDATE, "--out", "sim60/v"]),
    Case("validate-into-a-run-folder", 2, [*VALIDATE, "--out", "run"], "ok", gone=("run/metrics.csv",)),
    Case(
        "validate-run-of-another-model",
        5,
        ["validate", "--predicted", "sim60", "--measured", "run_mlp", "--out", "v"],
        setup=_other_model,
    ),
    Case("validate-a-run-without-trace", 7, ["validate", "--predicted", "sim60", "--measured", "run", "--out", "v"]),
    Case("calibrate-with-another-models-profile", 5, [*CALIBRATE, "--profile", "mlp/mlp.json", "--out", "c"]),
    Case(
        "calibrate-run-of-another-model",
        5,
        ["calibrate", "--measured", "run_mlp", "--profile", "p.json", "--out", "c"],
        setup=_other_model,
    ),
    Case(
        "calibrate-host-cores-1e11", 3, [*CALIBRATE, "--profile", "p.json", "--host-cores", "99999999999", "--out", "c"]
    ),
    Case("calibrate-out-is-its-run", 1, [*CALIBRATE, "--profile", "p.json", "--out", "run_pipe"]),
    Case("deploy-seed-2e40", 3, ["deploy", "--seed", "1099511627776", "--out", "d"]),
    Case("deploy-unknown-stream", 7, ["deploy", "--stream", "nope", "--out", "d"], timeout=120),
    Case("deploy-samples-1e14", 4, ["deploy", "--samples", "100000000000000", "--out", "d"], timeout=120),
    Case(
        "deploy-calibration-of-another-model",
        5,
        ["deploy", "--model", "mlp", "--calibration", "cal", "--out", "d"],
        timeout=120,
    ),
    Case(
        "budget-1e30-flops-with-er",
        4,
        [*RUN, "--algorithm", "er", "--compute-budget", "1e30", "--out", "r2"],
        timeout=60,
    ),
    Case(
        "budget-1e20-flops-with-er",
        4,
        [*RUN, "--algorithm", "er", "--compute-budget", "1e20", "--out", "r2"],
        timeout=60,
    ),
    Case("budget-1e-30-flops", 3, [*RUN, "--compute-budget", "1e-30", "--out", "r2"]),
    Case(
        "sampler-temperature-1e-300",
        3,
        [*RUN, "--algorithm", "alsar", "--sampler-temperature", "1e-300", "--out", "r2"],
    ),
    Case(
        "checkpoint-dir-is-a-run-folder",
        2,
        [*DIST, "--checkpoint-every", "5", "--checkpoint-dir", "run", "--out", "r2"],
    ),
    Case("distributed-follow-a-profile", 7, [*DIST, "--follow-trace", "p.json", "--out", "r2"]),
    Case("distributed-resume-without-checkpoint", 7, [*DIST, "--resume", "run", "--out", "r2"]),
    Case("distributed-unknown-dataset", 7, [*DIST, "--dataset", "nope", "--out", "r2"]),
    Case("distributed-streams-1e9", 3, [*DIST, "--streams", "1000000000", "--out", "r2"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="run the cases whose name starts with this")
    parser.add_argument("--held-out", action="store_true", help="run the held-out cases instead")
    parser.add_argument("--main-added", action="store_true", help="run the cases of what main added instead")
    parser.add_argument("--json", type=Path, default=None, help="write the outcomes as JSON")
    args = parser.parse_args()
    chosen = HELD_OUT if args.held_out else MAIN_ADDED if args.main_added else CASES
    cases = [c for c in chosen if c.name.startswith(args.only)]
    with tempfile.TemporaryDirectory(prefix="ferret-bad-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        make_fixtures(base, args.main_added)

        def one(case: Case) -> tuple[Case, str, str, float]:
            folder = Path(tmp) / case.name
            shutil.copytree(base, folder)
            outcome, note, seconds = judge(case, folder)
            print(f"{case.cls}  {case.name:<34} {outcome:<11} {seconds:6.1f}s  {note}", flush=True)
            return case, outcome, note, seconds

        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one, cases))
    counts = Counter(outcome for _, outcome, _, _ in results)
    failed = [(c.cls, c.name, o) for c, o, _, _ in results if o != "PASS"]
    print(f"\n{len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    by_class = Counter(cls for cls, _, _ in failed)
    print("failing per class: " + ", ".join(f"{k}: {by_class[k]}" for k in sorted(by_class)) if failed else "none fail")
    if args.json:
        rows = [
            {"case": c.name, "class": c.cls, "outcome": o, "note": n, "seconds": round(s, 2)} for c, o, n, s in results
        ]
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
