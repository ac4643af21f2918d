"""Every timing, contention and memory-model parameter of the twin, in one frozen dataclass.

Calibration (`ferret calibrate`) fits these to measured traces and writes them as JSON; the
defaults reproduce the closed forms' regime: no per-op overhead, free links, no jitter, one op
at a time per device, and only what (F4) counts in the memory ledger.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from planner.config_field import check_bounds, config_field, json_fields
from planner.errors import ValidationError
from planner.fileio import atomic_write_json, read_json
from planner.quantities import MAX_HOST_CORES
from sim.algorithm_passes import NO_PASSES, AlgorithmPasses

JITTER_MODELS = ("none", "lognormal", "empirical")


@dataclass(frozen=True)
class SimConfig:
    """Timing/contention model (`time_scale` … `jitter_sigma`), stream buffering and memory model.

    - `concurrency`: ops a device runs at once; `slowdown`: an op that starts while `m` other ops
      run on its device takes `1 + slowdown·m` times as long (GPU kernels sharing SMs).
    - `host_cores`, `host_slowdown`: every device shares one host of `host_cores` cores (CPU ranks
      on one machine); an op that starts while `k` ops run on the other devices takes
      `1 + host_slowdown·max(0, k + 1 - host_cores)` times as long (None: no host limit).
    - `time_scale` multiplies every profiled op time; `op_overhead_s` is added to each compute op
      (launch/dispatch cost); `loop_s` is the executor's own time between two ops (its loop:
      routing, messages, arrivals), charged to the device with every compute job just as
      `op_overhead_s` is — calibration fits the two apart, from inside the op rows and from the
      gaps between them; `update_s` is the optimizer step, run right after the backward that
      completes a gradient group.
    - A transfer between two devices occupies their link for `bytes / link_bandwidth_Bps` and
      lands `link_latency_s` after that; transfers on one link queue FIFO.
    - `jitter = "lognormal"` stretches every op by an independent mean-1 log-normal factor
      with log-std `jitter_sigma`, drawn from the run's seed; `jitter = "empirical"` by measured
      factors (`OpCosts.jitter_sequence`, costs.json's `jitter_sequence`, in the order measured,
      which `ferret calibrate` fits to real-time runs: stalls included), `jitter_block` consecutive
      ones at a time from a random start per device (a block bootstrap: measured op times come in
      slow and fast phases); `jitter_block = 1` draws each independently. The twin refuses
      `empirical` without a sequence, and a block over 1 for any other model.
    - `input_buffer`: how many data may wait in front of a worker (async strategies), for the
      next mini-batch (GPipe, 1F1B-flush) or in a B-Skip learner's buffer; `None` takes the
      strategy's default (see `sim.strategies`). A full buffer drops the oldest waiting datum
      for async workers and B-Skip (fresher data are worth more), the arriving one for GPipe and
      1F1B-flush (their queue is FIFO).
    - `exclusive_devices` places every (worker, stage) on its own device, ignoring the plan's
      placement: the closed forms' "no contention" assumption.
    - Memory: `transient_memory` also counts what (F4) leaves out — a gradient buffer of the
      stage's weights during each backward, the rebuilt inner activations during a recomputed
      backward, and the accumulation buffer of an open gradient group; `optimizer_state_ratio`
      is optimizer-state bytes per weight byte (SGD 0, momentum 1, Adam 2);
      `compensation_buffers` is the number of weight-sized buffers per stage kept by gradient
      compensation (λ auto-tuning keeps 2: `v_r` and `v_a`).
    - `trace_memory` adds a `mem` row to the trace at each change of a device's bytes.
    - `algorithm_passes`: the run's OCL algorithm's passes beyond the training forward and
      backward (LwF's teacher forward, MIR's scoring, MAS's importance pass) and how the twin
      charges them (sim/algorithm_passes.py); `ferret run --plan` sets it from `--algorithm`,
      as it sets `time_scale` for a replay memory's rows. The default charges none.

    Each field's metadata (`config_field`) gives its CLI flag, unit and bounds.
    """

    concurrency: int = config_field(1, help="ops a device runs at once", unit="int", ge=1, le=1024)
    slowdown: float = config_field(
        0.0, help="an op started beside m others takes 1 + slowdown·m times as long", unit="float", ge=0, le=1e3
    )
    host_cores: int | None = config_field(
        None,
        help="cores of the one host every device shares (CPU ranks); more ops at once than cores slow each down",
        unit="int",
        ge=1,
        le=MAX_HOST_CORES,
        default_text="unlimited",
    )
    host_slowdown: float = config_field(
        0.0,
        help="an op started while k ops run on the host's other devices takes 1 + host_slowdown·max(0, k+1-cores) "
        "times as long (fair time sharing: 1/cores)",
        unit="float",
        ge=0,
        le=1e3,
    )
    time_scale: float = config_field(1.0, help="multiplies every profiled op time", unit="float", gt=0, le=1e6)
    op_overhead_s: float = config_field(
        0.0, help="fixed cost added to each op (20us)", unit="seconds", ge=0, flag="op-overhead"
    )
    loop_s: float = config_field(
        0.0,
        help="the executor's own time between two ops, charged to the device with each op (40us)",
        unit="seconds",
        ge=0,
        flag="loop-time",
    )
    update_s: float = config_field(0.0, help="optimizer step time (50us)", unit="seconds", ge=0, flag="update-time")
    link_latency_s: float = config_field(0.0, help="latency between devices", unit="seconds", ge=0, flag="link-latency")
    link_bandwidth_Bps: float = config_field(
        math.inf,
        help="link bandwidth (10GiB/s)",
        unit="bandwidth",
        ge=1,
        finite=False,
        flag="link-bandwidth",
        default_text="free",
    )
    jitter: str = config_field(
        "none",
        help="op-time jitter model",
        choices=JITTER_MODELS,
        via="--jitter SIGMA: lognormal when SIGMA > 0; empirical from a calibrated --sim-config (its table: costs.json)",
    )
    jitter_sigma: float = config_field(
        0.0,
        help="log-std of a mean-1 log-normal op-time factor (beyond 3 most ops would take next to no time)",
        unit="float",
        ge=0,
        le=3,
        flag="jitter",
        default_text="0 (none)",
    )
    jitter_block: int = config_field(
        1,
        help="empirical jitter: measured factors drawn this many consecutive at a time (1: independently)",
        unit="int",
        ge=1,
        le=2**20,
    )
    input_buffer: int | None = config_field(
        None,
        help="data that may wait in front of a worker / for a mini-batch",
        unit="int",
        ge=0,
        le=2**31,
        default_text="the strategy's",
    )
    exclusive_devices: bool = config_field(
        False, help="one device per (worker, stage), ignoring the plan's placement (no contention)", unit="flag"
    )
    transient_memory: bool = config_field(
        False, help="also count gradients, rebuilt activations, accumulation buffers", unit="flag"
    )
    optimizer_state_ratio: float = config_field(
        0.0, help="optimizer bytes per weight byte (Adam 2)", unit="float", ge=0, le=64
    )
    compensation_buffers: int = config_field(
        0,
        help="weight-sized buffers per stage kept by gradient compensation (λ auto-tuning 2)",
        unit="int",
        ge=0,
        le=64,
    )
    trace_memory: bool = config_field(False, help="add a mem row per memory change", unit="flag")
    algorithm_passes: AlgorithmPasses = config_field(
        NO_PASSES,
        help="the OCL algorithm's extra passes per datum and stage",
        via="set by `ferret run` from the run's OCL algorithm (twin_passes); else from the --sim-config JSON",
    )

    def __post_init__(self) -> None:
        self.validate()

    @property
    def free_links(self) -> bool:
        return self.link_latency_s == 0 and math.isinf(self.link_bandwidth_Bps)

    def validate(self) -> SimConfig:
        """Every field against its declaration (`check_bounds`: types, bounds, units, choices)."""
        check_bounds(self, "sim config:")
        if not isinstance(self.algorithm_passes, AlgorithmPasses):
            raise ValidationError(
                f"sim config: algorithm_passes must be an AlgorithmPasses, got {type(self.algorithm_passes).__name__}"
            )
        return self

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        # JSON has no infinity: a free link is written as null bandwidth.
        out["link_bandwidth_Bps"] = None if math.isinf(self.link_bandwidth_Bps) else self.link_bandwidth_Bps
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "sim config") -> SimConfig:
        values = json_fields(cls, obj, where)
        if "algorithm_passes" in values:
            values["algorithm_passes"] = AlgorithmPasses.from_json(
                values["algorithm_passes"], f"{where}: algorithm_passes"
            )
        if values.get("link_bandwidth_Bps", 0) is None:
            values["link_bandwidth_Bps"] = math.inf
        for key in (
            "slowdown",
            "host_slowdown",
            "time_scale",
            "op_overhead_s",
            "loop_s",
            "update_s",
            "link_latency_s",
            "jitter_sigma",
        ):
            if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
                values[key] = float(values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValidationError(f"{where}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SimConfig:
        obj = read_json(path, "sim config")
        try:
            return cls.from_json(obj)
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}") from None
