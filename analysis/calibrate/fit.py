"""`calibrate(runs, profile)`: fit the twin's timing model to measured traces.

Direct statistics of the traces, no simulation: (1) every compute row is labelled with its
group and with how crowded its device and host were (`jobs.py`); (2) one robust log-space fit
gives each group's uncontended base time, the device slow-down, the host slow-down and the
jitter (`contention.py`); (3) the bases are linear in the per-layer times, the per-op overhead
and the optimizer step (`layers.py`); (4) send rows give the links (`links.py`); (5) the gaps
between ops whose input was ready give the executor's loop (`loop.py`); (6) the memory model
comes from how the runs ran (`memory.py`); (7) real-time runs' ops over their cells' medians give
the `empirical` jitter's sequence in time order (`factors.py`), which a calibrated twin draws from
in blocks. Jobs that start together on one device are ordered by the first fit and the fit is
repeated once.

What a run contributes depends on its clock (`RunFolder.clock`): a replay runs one op at a
time, so its rows give op costs but no contention; twin and distributed runs give everything.
Host contention is fitted where the runs' host has a known core count: a distributed run's
(`--host-cores`, default this machine's) or a twin's own `host_cores`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from analysis.calibrate.contention import ContentionFit, fit_contention
from analysis.calibrate.factors import JITTER_BLOCK, FactorSequence, fit_factor_sequence
from analysis.calibrate.jobs import ROW_TYPES, OpObservations, contention, observe, tied
from analysis.calibrate.layers import GroupEquation, LayerFit, fit_layers
from analysis.calibrate.links import LinkFit, fit_links, transfers
from analysis.calibrate.loop import fit_loop
from analysis.calibrate.memory import common_memory_model
from analysis.calibrate.params import Fitted
from analysis.run_folder import REAL_TIME_SOURCES, RunFolder
from analysis.trace_table import TraceTable, load_table
from planner.config_field import config_field
from planner.errors import FerretError
from planner.profile import LayerProfile, ModelProfile
from planner.provenance import check_made_for
from planner.quantities import MAX_HOST_CORES
from sim.algorithm_passes import NO_PASSES, AlgorithmPasses
from sim.config import SimConfig
from sim.fitted_costs import LayerCosts, StageTimes


@dataclass(frozen=True)
class CalibrationOptions:
    """Settings of `ferret calibrate` beyond its folders; each field is one flag (planner/config_field.py)."""

    host_cores: int | None = config_field(
        None,
        help="CPU cores of the host the distributed runs shared (host contention)",
        unit="int",
        ge=1,
        le=MAX_HOST_CORES,
        default_text="this machine's",
    )


@dataclass(frozen=True)
class MeasuredRun:
    """One run folder to calibrate on with its trace table, checked by `load_runs` against its plan."""

    folder: RunFolder
    table: TraceTable
    passes: AlgorithmPasses = NO_PASSES  # what its algorithm ran beyond the training ops (`run_passes`)


@dataclass(frozen=True)
class GroupSummary:
    """One fitted group (run, row type, stage) with its row count and base duration in seconds.

    `residual` is how far the per-layer model misses the base (relative; NaN where the layer fit did not
    use the group, e.g. recompute rows).
    """

    run: int
    row_type: str
    stage: int
    rows: int
    base_s: float
    residual: float  # the layer model's base / the group's fitted base - 1


@dataclass(frozen=True, eq=False)
class Calibration:
    """What `calibrate` returns: the calibrated profile and `SimConfig`, and every fit behind them.

    `parameters` lists each fitted or fixed scalar with its uncertainty; `runs` names the folders it
    came from and `host_cores` the host core count it assumed (None: host contention not fitted).
    """

    profile: ModelProfile  # source "calibrated"
    sim_config: SimConfig
    layers: LayerFit
    contention: ContentionFit
    links: LinkFit
    loop: Fitted
    concurrency: Fitted
    factors: FactorSequence
    groups: tuple[GroupSummary, ...]
    stages: tuple[StageTimes, ...]  # per measured partition: its stages' own times
    runs: tuple[str, ...]
    host_cores: int | None

    @property
    def parameters(self) -> tuple[Fitted, ...]:
        return (
            self.layers.overhead,
            self.loop,
            self.layers.update,
            self.concurrency,
            self.contention.slowdown,
            self.contention.host_slowdown,
            self.contention.jitter_sigma,
            self.factors.stall_share,
            self.factors.largest,
            self.links.latency,
            self.links.bandwidth,
        )

    @property
    def costs(self) -> LayerCosts:
        """The fitted cost model (`sim.fitted_costs`): per-layer times with recompute's own."""
        c = self.sim_config
        return LayerCosts(
            names=tuple(layer.name for layer in self.profile.layers),
            t_fwd=tuple(p.value for p in self.layers.t_fwd),
            t_bwd=tuple(p.value for p in self.layers.t_bwd),
            t_rec=tuple(p.value for p in self.layers.t_rec),
            op_overhead_s=c.op_overhead_s,
            loop_s=c.loop_s,
            update_s=c.update_s,
            link_latency_s=c.link_latency_s,
            link_bandwidth_Bps=c.link_bandwidth_Bps,
            stages=self.stages,
            jitter_sequence=self.factors.factors,
        )


def load_runs(folders: list[RunFolder], profile: ModelProfile) -> list[MeasuredRun]:
    """Read each run's trace; refuse a profile whose layers are not the runs' stages."""
    runs = []
    for folder in folders:
        plan = folder.plan
        if plan.num_layers != profile.num_layers:
            raise FerretError(
                f"--profile has {profile.num_layers} layers but {folder.path}'s plan partitions {plan.num_layers}"
            )
        if folder.profile is not None:
            ours = [layer.name for layer in profile.layers]
            theirs = [layer.name for layer in folder.profile.layers]
            if ours != theirs:
                raise FerretError(f"--profile's layers {ours} are not those of {folder.path}'s run ({theirs})")
        table = load_table(folder.trace_path)
        stages = table.num_stages
        if stages != plan.num_stages:
            raise FerretError(f"{folder.trace_path}: ops on {stages} stages but its plan has {plan.num_stages}")
        if not table.mask("fwd", "bwd").any():
            raise FerretError(f"{folder.trace_path}: no fwd or bwd rows to fit")
        what = f"--measured {folder.path}"
        check_made_for(folder.made_from, profile.made_from(), what, "--profile", force_flag=None)
        runs.append(MeasuredRun(folder, table, run_passes(folder)))
    return runs


def run_passes(folder: RunFolder) -> AlgorithmPasses:
    """The algorithm's passes beyond the training ops in a run: a `ferret run --plan` summary's
    `sim_algorithm_passes` (its algorithm's), or a twin's `sim_config` (none before either existed)."""
    value = folder.summary.get("sim_algorithm_passes")
    where = f"{folder.path}/summary.json: sim_algorithm_passes"
    if value is None:
        sim_config = folder.config.get("sim_config")
        value = sim_config.get("algorithm_passes") if isinstance(sim_config, dict) else None
        where = f"{folder.path}/config.json: sim_config.algorithm_passes"
    return NO_PASSES if value is None else AlgorithmPasses.from_json(value, where)


def calibrate(
    runs: list[MeasuredRun],
    profile: ModelProfile,
    options: CalibrationOptions | None = None,
) -> Calibration:
    if not runs:
        raise FerretError("calibrate needs at least one measured run")
    cores = [host_cores_of(run.folder, options or CalibrationOptions()) for run in runs]
    observations = [observe(run.table, run.passes) for run in runs]
    stages = [run.folder.plan.num_stages for run in runs]
    offsets = np.cumsum([0] + [len(ROW_TYPES) * p for p in stages])
    group = np.concatenate([offsets[r] + o.row_type * stages[r] + o.stage for r, o in enumerate(observations)])
    duration = np.concatenate([o.duration for o in observations])
    groups = int(offsets[-1])

    # Jobs that start at one instant saw each other in an order the trace does not record. First
    # fit on the jobs that started alone; their bases order the others (the faster started
    # first); then fit everything.
    m, host = _crowding(observations, np.ones_like(duration), cores)
    alone = np.concatenate([~tied(o) for o in observations])
    alone |= ~np.isin(group, group[alone])  # a group with no lone job keeps its tied ones
    first = fit_contention(duration[alone], group[alone], groups, m[alone], host[alone])
    m, host = _crowding(observations, _group_ratio(duration, group, first.base), cores)
    fit = fit_contention(duration, group, groups, m, host)
    concurrency = int(m.max()) + 1 if len(m) else 1

    equations, summaries = [], []
    zero_groups = set(group[duration == 0].tolist())  # groups with an op measured at 0 s
    for r, (run, p) in enumerate(zip(runs, stages, strict=True)):
        for code in range(len(ROW_TYPES)):
            for j in range(p):
                g = int(offsets[r] + code * p + j)
                if fit.rows[g] == 0 and g not in zero_groups:
                    continue
                equations.append(
                    GroupEquation(code, run.folder.plan.stage_layers(j), float(fit.base[g]), int(max(fit.rows[g], 1)))
                )
                summaries.append((r, code, j, int(fit.rows[g]), float(fit.base[g])))
    layers = fit_layers(equations, profile, fit.jitter_sigma.value)
    main = [s for s in summaries if ROW_TYPES[s[1]] != "recompute"]
    residual = dict(zip([(s[0], s[1], s[2]) for s in main], layers.residuals, strict=True))
    groups_out = tuple(
        GroupSummary(r, ROW_TYPES[code], j, rows, b, residual.get((r, code, j), float("nan")))
        for r, code, j, rows, b in summaries
    )
    tables = [(run.folder.source, run.table) for run in runs]
    links = fit_links(transfers(tables))
    loop = fit_loop(tables)
    sigma = fit.jitter_sigma.value
    real_time = np.concatenate(
        [
            np.full(len(o.duration), run.folder.source in REAL_TIME_SOURCES)
            for run, o in zip(runs, observations, strict=True)
        ]
    )
    # Each run's devices are streams of their own: (run, device) numbered over all runs.
    device = np.concatenate([o.job_device[o.job] for o in observations])
    run_of = np.concatenate([np.full(len(o.duration), r) for r, o in enumerate(observations)])
    factors = fit_factor_sequence(
        np.where(real_time, fit.log_ratio, np.nan),
        sigma,
        run_of * (int(device.max(initial=0)) + 1) + device,
        np.concatenate([o.job_start[o.job] for o in observations]),
    )
    config = SimConfig(
        concurrency=concurrency,
        slowdown=fit.slowdown.value,
        host_cores=_one_host(cores) if fit.host_slowdown.fitted else None,
        host_slowdown=fit.host_slowdown.value,
        time_scale=1.0,
        op_overhead_s=layers.overhead.value,
        loop_s=loop.value,
        update_s=layers.update.value,
        link_latency_s=links.latency.value,
        link_bandwidth_Bps=links.bandwidth.value,
        jitter="empirical" if factors.varies else "lognormal" if sigma > 1e-9 else "none",
        jitter_block=JITTER_BLOCK if factors.varies else 1,
        jitter_sigma=sigma if sigma > 1e-9 else 0.0,
        **common_memory_model([run.folder for run in runs]),
    )
    concurrency_param = Fitted(
        "concurrency", float(concurrency), 0.0, "ops", "most jobs seen running at once on a device"
    )
    return Calibration(
        profile=calibrated_profile(profile, layers),
        sim_config=config,
        layers=layers,
        contention=fit,
        links=links,
        loop=loop,
        concurrency=concurrency_param,
        factors=factors,
        groups=groups_out,
        stages=measured_stages(runs, groups_out, layers.overhead.value),
        runs=tuple(str(run.folder.path) for run in runs),
        host_cores=_one_host(cores),
    )


def measured_stages(
    runs: list[MeasuredRun], groups: tuple[GroupSummary, ...], overhead: float
) -> tuple[StageTimes, ...]:
    """Each measured partition's stage times: a group's base less the overhead its rows carry,
    averaged over runs of one partition by rows (a stage need not cost its layers' sum)."""
    sums: dict[tuple[tuple[int, ...], str, int], list[float]] = {}
    for g in groups:
        if g.rows == 0 or g.row_type == "update":
            continue
        kind = {"fwd": "fwd", "recompute": "rec"}.get(g.row_type, "bwd")
        seconds = g.base_s - (0.0 if g.row_type == "bwd after recompute" else overhead)
        key = (runs[g.run].folder.plan.partition, kind, g.stage)
        total = sums.setdefault(key, [0.0, 0.0])
        total[0] += g.rows * max(seconds, 0.0)
        total[1] += g.rows
    out = []
    for partition in dict.fromkeys(run.folder.plan.partition for run in runs):
        P = len(partition) - 1

        def times(kind: str, partition: tuple[int, ...] = partition, P: int = P) -> tuple[float | None, ...]:
            cells = [sums.get((partition, kind, j)) for j in range(P)]
            return tuple(None if c is None else c[0] / c[1] for c in cells)

        out.append(StageTimes(partition, times("fwd"), times("bwd"), times("rec")))
    return tuple(out)


def calibrated_profile(profile: ModelProfile, layers: LayerFit) -> ModelProfile:
    new_layers = tuple(
        LayerProfile(
            name=layer.name,
            t_fwd_s=f.value,
            t_bwd_s=b.value,
            param_bytes=layer.param_bytes,
            act_bytes=layer.act_bytes,
            fwd_flops=layer.fwd_flops,
        )
        for layer, f, b in zip(profile.layers, layers.t_fwd, layers.t_bwd, strict=True)
    )
    return dataclasses.replace(profile, layers=new_layers, source="calibrated")


def _group_ratio(duration: np.ndarray, group: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per row: duration over its group's base."""
    ref = base[group]
    return np.divide(duration, ref, out=np.ones_like(duration), where=ref > 0)


def _one_host(cores: list[int | None]) -> int | None:
    known = sorted({c for c in cores if c is not None})
    if len(known) > 1:
        raise FerretError(f"the runs were measured on hosts of {known} cores; calibrate one host's runs together")
    return known[0] if known else None


def host_cores_of(folder: RunFolder, options: CalibrationOptions) -> int | None:
    """The cores a run's devices shared: a twin's own `host_cores`; a distributed run's host
    (`--host-cores`, default this machine's); none for a replay (one op at a time)."""
    if folder.source == "twin":
        return (folder.config.get("sim_config") or {}).get("host_cores")
    if folder.source == "distributed":
        return options.host_cores or os.cpu_count() or 1
    return None


def _crowding(
    observations: list[OpObservations], ratio: np.ndarray, cores: list[int | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: jobs already running on its device, and the jobs beyond its host's cores."""
    ms, hosts = [], []
    at = 0
    for obs, host_cores in zip(observations, cores, strict=True):
        n = len(obs)
        row_ratio = ratio[at : at + n]
        job_ratio = np.full(len(obs.job_start), -np.inf)
        np.maximum.at(job_ratio, obs.job, row_ratio)
        job_ratio[np.isinf(job_ratio)] = 1.0
        m, others = contention(obs, job_ratio)
        others = np.zeros_like(others) if host_cores is None else np.maximum(others + 1 - host_cores, 0)
        ms.append(m)
        hosts.append(others)
        at += n
    return np.concatenate(ms), np.concatenate(hosts)
