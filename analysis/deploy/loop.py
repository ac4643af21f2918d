"""`ferret deploy`'s closed loop, phase by phase, in one output folder.

    profile → top-K plans (closed forms) → probe run → calibrate → simulate the K plans with
    the calibrated twin on the real devices, keep the best simulated R → run it → validate →
    recalibrate on the probe and the run → validate again → report

The probe is a short run of the closed forms' favourite on the same devices and stream kind:
it is what the twin is calibrated on before it chooses (skipped when `--calibration DIR` gives
an earlier calibration). Three predictions of the chosen run are compared with what it measured:
the profile-only twin, the twin calibrated before the run (the promise the plan was chosen on)
and the twin recalibrated with the run (what calibration learned from it).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analysis.deploy.candidates import Candidate, resolve_budget, simulate_candidates, top_candidates
from analysis.deploy.invoke import invoke
from analysis.run_folder import RunFolder, load_run_folder
from analysis.validate import JUDGED, Tolerances, Validation, validate
from analysis.validate_report import format_error, write_validation
from executor.compensation.base import compensator_names
from planner.config_field import config_field
from planner.limits import check_work
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.provenance import check_made_for
from planner.quantities import MAX_DEVICES
from sim.arrivals import make_arrivals
from sim.config import SimConfig
from sim.fitted_costs import LayerCosts

# Without --samples / --probe-samples, the run and the probe last this long in stream time: at
# the default interval (the slowest layer's forward, ~100 µs for mnistnet) a fixed count of
# 1000 data was a 0.1-s stream — pipeline fill and torch's first calls, not a steady state,
# which the twin is held to. (A stream may be longer than its data set: it makes passes.)
RUN_S, PROBE_S = 3.0, 1.0
PHASES = ("profile", "plan", "probe", "calibrate", "choose", "run", "validate", "recalibrate", "report")
PREDICTIONS = ("profile only", "calibrated before the run", "recalibrated with the run")


@dataclass(frozen=True)
class DeploySpec:
    """What to deploy, where, on which stream, and how the loop runs."""

    model: str = config_field("mnistnet", help="model name (see ferret profile --help)")
    budget: str = config_field("max", help="memory budget: a size (64MiB), min (M−) or max (M+)")
    devices: int = config_field(2, help="devices (ranks) D the plans are placed on", unit="int", ge=1, le=MAX_DEVICES)
    dataset: str = config_field("digits", help="data set of the stream (see ferret run --help)")
    arrival_interval_s: float | None = config_field(
        None,
        help="time between arrivals (2ms)",
        unit="seconds",
        gt=0,
        flag="arrival-interval",
        default_text="the slowest layer's forward time, as ferret plan",
    )
    stream: str = config_field("iid", help="stream order: iid, class-incremental, …")
    arrival: str = config_field("fixed", help="arrival process: fixed, poisson, bursty")
    samples: int | None = config_field(
        None, help="stream length of the run", unit="int", ge=1, default_text=f"as many as arrive in {RUN_S:g} s"
    )
    probe_samples: int | None = config_field(
        None,
        help="length of the probe run the twin is calibrated on before it chooses",
        unit="int",
        ge=1,
        default_text=f"as many as arrive in {PROBE_S:g} s",
    )
    seed: int = config_field(0, help="one seed for the stream, weights and the twin", unit="seed")
    top_k: int = config_field(4, help="partitions whose plans are compared", unit="int", ge=1)
    mode: str = config_field("distributed", help="executor", choices=("distributed", "replay"))
    compensation: str = config_field(
        "none", help="stale-gradient compensation (docs/executor.md): {names}", names=compensator_names
    )
    decay_per_s: float = config_field(1.0, help="data-value decay c, per second", unit="rate", ge=0, flag="decay")
    calibration: Path | None = config_field(
        None, help="a ferret calibrate folder to choose with (skips the probe)", unit="path"
    )
    run_options: tuple[str, ...] = config_field((), help="extra `ferret run` flags", via="the library only")

    def check(self) -> None:
        """What can be refused before any phase starts: every name, the arrival process, the
        budget's size, and the streams' length against the work limit (each phase checks its
        own work exactly)."""
        # The built-in names register when their modules are imported (the registries load them lazily).
        import executor.data.catalog
        import executor.data.stream_builders
        import executor.models.zoo  # noqa: F401
        from analysis.deploy.candidates import checked_budget
        from executor.compensation import COMPENSATORS
        from executor.data import DATASETS, STREAMS
        from executor.models import MODELS

        for registry, name in ((MODELS, self.model), (DATASETS, self.dataset), (STREAMS, self.stream)):
            registry.canonical(name)
        COMPENSATORS.canonical(self.compensation)
        make_arrivals(self.arrival, self.arrival_interval_s or 1.0)
        checked_budget(self.budget)
        if self.arrival_interval_s is not None:  # else: once the profile gives the interval (`lengths`)
            self.lengths(self.arrival_interval_s)

    def lengths(self, arrival_interval_s: float) -> tuple[int, int]:
        """The run's and the probe's stream lengths at this mean arrival interval (given, or
        `RUN_S` / `PROBE_S` of stream), refused beyond the work limit."""
        run = self.samples or max(1, math.ceil(RUN_S / arrival_interval_s))
        probe = self.probe_samples or max(1, math.ceil(PROBE_S / arrival_interval_s))
        total = run + (0 if self.calibration is not None else probe)
        check_work("max_events", total, "deploying (the probe and the run)", "samples")
        return run, probe


@dataclass
class DeployState:
    """What each phase produced, for the next phases and the report."""

    out: Path
    samples: int = 0  # the run's stream length and the probe's (`DeploySpec.lengths`, at `plan`)
    probe_samples: int = 0
    profile: ModelProfile | None = None
    candidates: list[Candidate] = field(default_factory=list)
    chosen: Candidate | None = None
    calibration_dir: Path | None = None
    measured: RunFolder | None = None
    validations: dict[str, Validation] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)


Progress = Callable[[str], None]


class DeployLoop:
    """Runs `ferret deploy`'s phases in order into one output folder (see the module docstring).

    `run` reports each phase to `progress` with its time and returns the `DeployState`.
    """

    def __init__(self, spec: DeploySpec, out: Path, progress: Progress, tolerances: Tolerances | None = None) -> None:
        self.spec = spec
        self.state = DeployState(out)
        self.progress = progress
        self.tolerances = tolerances or Tolerances()

    # ------------------------------------------------------------------ helpers
    def _log(self, phase: str) -> Path:
        return self.state.path("logs", f"{phase}.log")

    def _phase(self, k: int, name: str, what: str, work: Callable[[], str]) -> None:
        self.progress(f"[{k}/{len(PHASES)}] {name}: {what} …")
        started = time.perf_counter()
        detail = work()
        elapsed = time.perf_counter() - started
        self.state.timings[name] = elapsed
        self.progress(f"      {detail} ({elapsed:.1f} s)")

    def _stream_args(self, samples: int) -> list[str]:
        s = self.spec
        return ["--samples", str(samples), "--arrival", s.arrival, "--seed", str(s.seed)]

    def _run(self, plan: Path, samples: int, out: Path, phase: str) -> None:
        s = self.spec
        argv = ["--plan", str(plan), "--mode", s.mode, "--dataset", s.dataset, "--stream", s.stream]
        argv += ["--model", s.model, "--profile", str(self.state.path("profile", "profile.json"))]
        argv += ["--compensation", s.compensation, *self._stream_args(samples)]
        if s.mode == "distributed":
            argv += ["--nproc", str(len({d for row in Plan.load(plan).placement for d in row}))]
        invoke("run", [*argv, *s.run_options, "--out", str(out)], self._log(phase))
        # The folder must name its plan and profile itself once it leaves the staging area.
        shutil.copy(plan, out / "plan.json")
        shutil.copy(self.state.path("profile", "profile.json"), out / "profile.json")

    def _simulate(
        self, plan: Path, profile: Path, calibration: Path | None, samples: int, out: Path, phase: str
    ) -> None:
        """The twin's prediction of `plan`: profile only, or with a calibration's model and costs."""
        argv = ["--plan", str(plan), "--profile", str(profile), *self._stream_args(samples), "--trace-memory"]
        if calibration is not None:
            argv += ["--sim-config", str(calibration / "sim_config.json"), "--costs", str(calibration / "costs.json")]
        invoke("simulate", [*argv, "--out", str(out)], self._log(phase))
        shutil.copy(profile, out / "profile.json")

    def _calibrate(self, runs: list[Path], out: Path, phase: str) -> None:
        argv = ["--measured", *map(str, runs), "--profile", str(self.state.path("profile", "profile.json"))]
        invoke("calibrate", [*argv, "--out", str(out)], self._log(phase))

    # ------------------------------------------------------------------ phases
    def run(self) -> DeployState:
        s, st = self.spec, self.state
        self._phase(1, "profile", f"{s.model} on this machine for {s.dataset}", self.profile)
        self._phase(2, "plan", f"top {s.top_k} Ferret plans for budget {s.budget} on {s.devices} devices", self.plan)
        if s.calibration is None:
            self._phase(3, "probe", f"{st.probe_samples} samples of the closed forms' best ({s.mode})", self.probe)
            self._phase(
                4, "calibrate", "the twin on the probe", lambda: self.calibrate_on(["probe"], "calibration-probe")
            )
        else:
            self.progress(f"[3-4/{len(PHASES)}] probe, calibrate: using the calibration in {s.calibration}")
            assert st.profile is not None
            calibrated = ModelProfile.load(s.calibration / "profile.json")
            what, against = f"--calibration {s.calibration}", f"model {s.model} on {s.dataset}"
            check_made_for(calibrated.made_from(), st.profile.made_from(), what, against, force_flag=None)
            st.calibration_dir = s.calibration
        self._phase(5, "choose", "simulate every candidate with the calibrated twin", self.choose)
        self._phase(
            6, "run", f"the chosen plan on {st.samples} samples ({s.mode}, {s.devices} devices)", self.run_chosen
        )
        self._phase(7, "validate", "predicted vs measured (profile-only and calibrated twin)", self.validate_before)
        self._phase(8, "recalibrate", "the twin on the probe and the run, then validate again", self.recalibrate)
        return st

    def profile(self) -> str:
        from executor.data import load_dataset

        s = self.spec
        data = load_dataset(s.dataset, seed=s.seed)
        shape = ",".join(map(str, data.input_shape))
        out = self.state.path("profile", "profile.json")
        argv = ["--model", s.model, "--input-shape", shape, "--classes", str(data.num_classes), "--out", str(out)]
        invoke("profile", argv, self._log("profile"))
        self.state.profile = ModelProfile.load(out)
        p = self.state.profile
        return f"{p.num_layers} layers, fwd {1e6 * p.t_fwd.sum():.0f} µs + bwd {1e6 * p.t_bwd.sum():.0f} µs per sample"

    def plan(self) -> str:
        s, st = self.spec, self.state
        assert st.profile is not None
        td = s.arrival_interval_s or float(st.profile.t_fwd.max())
        st.samples, st.probe_samples = s.lengths(td)
        budget = resolve_budget(s.budget, st.profile, td, s.decay_per_s, s.devices)
        st.candidates = top_candidates(st.profile, td, s.decay_per_s, budget, s.devices, s.top_k)
        folder = st.path("candidates")
        folder.mkdir(parents=True, exist_ok=True)
        for k, c in enumerate(st.candidates):
            c.plan.save(folder / f"plan-{k}.json")
        best = st.candidates[0]
        return f"{len(st.candidates)} plans; closed-form best: partition {list(best.plan.partition)}, R = {best.closed_form_rate:.4g}/s"

    def probe(self) -> str:
        self._run(
            self.state.path("candidates", "plan-0.json"), self.state.probe_samples, self.state.path("probe"), "probe"
        )
        return "measured trace in probe/"

    def calibrate_on(self, runs: list[str], name: str) -> str:
        out = self.state.path(name)
        self._calibrate([self.state.path(r) for r in runs], out, name)
        self.state.calibration_dir = out
        config = SimConfig.load(out / "sim_config.json")
        return (
            f"overhead {1e6 * config.op_overhead_s:.1f} µs, loop {1e6 * config.loop_s:.1f} µs, "
            f"update {1e6 * config.update_s:.1f} µs, jitter {config.jitter} (σ {config.jitter_sigma:.3f}), "
            f"slow-down {config.slowdown:.3f} → {name}/"
        )

    def choose(self) -> str:
        s, st = self.spec, self.state
        folder = st.calibration_dir
        assert folder is not None and st.profile is not None
        config, costs = SimConfig.load(folder / "sim_config.json"), LayerCosts.load(folder / "costs.json")
        td = st.candidates[0].plan.arrival_interval_s
        arrivals = make_arrivals(s.arrival, td)
        st.candidates = simulate_candidates(st.candidates, st.profile, config, costs, st.samples, arrivals, s.seed)
        st.chosen = st.candidates[0]
        st.chosen.plan.save(st.path("plan.json"))
        sim = st.chosen.simulated
        assert sim is not None
        return (
            f"chosen: partition {list(st.chosen.plan.partition)}, {len(st.chosen.plan.active_workers)} workers; "
            f"twin R = {sim.adaptation_rate:.4g}/s (closed form {st.chosen.closed_form_rate:.4g}/s), "
            f"drops {100 * sim.drop_rate:.1f} %"
        )

    def run_chosen(self) -> str:
        st = self.state
        self._run(st.path("plan.json"), st.samples, st.path("run"), "run")
        return "measured run in run/"

    def _predict_and_validate(self, label: str, calibration: Path | None, name: str) -> None:
        st = self.state
        profile = st.path("profile", "profile.json") if calibration is None else calibration / "profile.json"
        self._simulate(st.path("plan.json"), profile, calibration, st.samples, st.path(f"sim-{name}"), name)
        predicted = load_run_folder(st.path(f"sim-{name}"), "--predicted")
        if st.measured is None:  # the run is read once for the two or three predictions it is held to
            st.measured = load_run_folder(st.path("run"), "--measured")
        st.validations[label] = validation = validate(predicted, st.measured, self.tolerances)
        folder = st.path(f"validate-{name}")
        folder.mkdir()
        write_validation(validation, folder)

    def validate_before(self) -> str:
        st = self.state
        assert st.calibration_dir is not None
        self._predict_and_validate(PREDICTIONS[0], None, "profile")
        self._predict_and_validate(PREDICTIONS[1], st.calibration_dir, "calibrated")
        return _headline(st.validations[PREDICTIONS[1]])

    def recalibrate(self) -> str:
        runs = ["run"] if self.spec.calibration is not None else ["probe", "run"]
        detail = self.calibrate_on(runs, "calibration")
        self._predict_and_validate(PREDICTIONS[2], self.state.path("calibration"), "recalibrated")
        return detail + "; " + _headline(self.state.validations[PREDICTIONS[2]])


def _headline(v: Validation) -> str:
    parts = [f"{m.name} {format_error(m)}" for m in map(v.metric, JUDGED) if m.error is not None]
    return ", ".join(parts) or "no comparable timing metric (sequential replay)"
