"""Measured profiles: per-layer forward and backward time on a real device, plus analytic bytes.

Each layer is timed alone on the activation the previous layer produced, in training mode,
the way a pipeline stage runs it: forward with autograd recording, then backward of that
layer's output with a fixed random output-gradient. Layer 0's input is data and needs no
gradient (as in training); every later layer's input requires one, so its backward includes
the input-gradient kernels a stage must run to send the gradient upstream. Gradients are
cleared outside the timed region. After `warmup` untimed rounds, the median of `repeats`
rounds is kept. On CUDA the timing uses CUDA events (GPU time between two recorded points);
on CPU a monotonic wall clock.
"""

from __future__ import annotations

import copy
import time
from typing import Protocol

import numpy as np
import torch

from executor.models.base import LayeredModel
from executor.profiler.trace import check_batch_fits, model_provenance, trace_layers
from planner.errors import FerretError
from planner.limits import check_work
from planner.profile import LayerProfile, ModelProfile


class _Timer(Protocol):
    def start(self) -> None: ...
    def stop(self) -> float: ...


class WallTimer:
    """Times a region with `time.perf_counter`: `stop()` returns the seconds since `start()` (CPU)."""

    def __init__(self) -> None:
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        return time.perf_counter() - self._t0


class CudaEventTimer:
    """Times a region with CUDA events: `stop()` returns the GPU seconds since `start()`.

    `start` synchronises the device first, so earlier work is not counted.
    """

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._begin = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        torch.cuda.synchronize(self._device)
        self._begin.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._begin.elapsed_time(self._end) / 1e3  # ms → s


def resolve_torch_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise FerretError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise FerretError(f"device {device!r} requested but CUDA is not available on this machine")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise FerretError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device("cuda", index)
    if dev.type != "cpu":
        raise FerretError(f"unsupported device {device!r} (use cpu, cuda or cuda:N)")
    return dev


def profile_model(
    model: LayeredModel,
    *,
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 3,
    repeats: int = 10,
    seed: int = 0,
    threads: int | None = None,
) -> ModelProfile:
    """Measure `model` layer by layer (source="measured"); `model` itself is left untouched.

    `threads` sets torch's intra-op CPU threads for the measurement (restored afterwards);
    None keeps the current setting. On a shared machine one thread gives far steadier times.
    """
    if batch_size < 1 or warmup < 0 or repeats < 1:
        raise FerretError(f"profiling needs batch ≥ 1, warmup ≥ 0, repeats ≥ 1 (got {batch_size}, {warmup}, {repeats})")
    if threads is not None and threads < 1:
        raise FerretError(f"profiling threads must be ≥ 1, got {threads}")
    dev = resolve_torch_device(device)
    check_batch_fits(model, batch_size)
    rounds = warmup + repeats
    check_work("max_events", 2 * rounds * model.num_layers, f"timing {model.num_layers} layers {rounds} times", "ops")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(model, batch_size, dev, warmup, repeats, seed)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(
    model: LayeredModel, batch_size: int, dev: torch.device, warmup: int, repeats: int, seed: int
) -> ModelProfile:
    costs = trace_layers(model, batch_size)
    work = copy.deepcopy(model).to(dev).train()
    timer: _Timer = CudaEventTimer(dev) if dev.type == "cuda" else WallTimer()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch_size, *model.input_shape), generator=gen).to(dev)
    layers = []
    for index, (cost, layer) in enumerate(zip(costs, work.layers, strict=True)):
        x_in = x.detach().requires_grad_(index > 0)
        fwd, bwd = np.empty(repeats), np.empty(repeats)
        grad_out: torch.Tensor | None = None
        out = x_in
        for r in range(warmup + repeats):
            _clear_grads(layer, x_in)
            timer.start()
            out = layer(x_in)
            t_fwd = timer.stop()
            if grad_out is None:
                grad_out = torch.randn(out.shape, generator=gen).to(dev)
            t_bwd = 0.0
            if out.requires_grad:
                timer.start()
                out.backward(grad_out)
                t_bwd = timer.stop()
            if r >= warmup:
                fwd[r - warmup], bwd[r - warmup] = t_fwd, t_bwd
        layers.append(
            LayerProfile(
                cost.name, float(np.median(fwd)), float(np.median(bwd)), cost.param_bytes, cost.out_bytes, cost.flops
            )
        )
        x = out.detach()
    return ModelProfile(
        model.name,
        tuple(layers),
        device=str(dev),
        batch_size=batch_size,
        source="measured",
        provenance=model_provenance(model),
    ).validate()


def _clear_grads(layer: torch.nn.Module, x: torch.Tensor) -> None:
    for p in layer.parameters():
        p.grad = None
    x.grad = None
