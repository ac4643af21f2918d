"""SGD and Adam for a stage whose weights are flat versions.

The optimizer cannot be a `torch.optim` object: the tensor it steps changes whenever an update
must leave the previous version intact for in-flight data (copy-on-write, see versions.py).
The state (momentum, Adam moments) is flat and allocated once; every step runs, per parameter,
exactly the operations of `torch.optim.SGD` / `torch.optim.Adam` on CPU (the single-tensor
path), so a stage reproduces a plain `torch.optim` training loop bit for bit (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from executor.stage.layout import ParamLayout
from executor.stage.tally import Tally
from planner.config_field import check_bounds, config_field
from planner.errors import ValidationError

OPTIMIZER = "optimizer"
TensorList = list[torch.Tensor] | tuple[torch.Tensor, ...]
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer of a sequential learner (as a `torch.optim` object, `build`) and of every
    pipeline stage (`StageOptimizer`, the same arithmetic). Field defaults are torch.optim's,
    and the name's is `ferret run`'s: Adam at learning rate 1e-3. A `StageRuntime` given no
    optimizer uses `PLAIN_SGD`."""

    name: str = config_field("adam", help="optimizer", choices=OPTIMIZERS, flag="optimizer")
    lr: float = config_field(1e-3, help="learning rate", unit="float", gt=0)
    momentum: float = config_field(0.0, help="SGD momentum", unit="float", ge=0, lt=1)
    dampening: float = config_field(0.0, help="SGD: dampening of the momentum", unit="float", ge=0, le=1)
    nesterov: bool = config_field(
        False, help="SGD: Nesterov momentum (needs --momentum > 0 and --dampening 0)", unit="flag"
    )
    weight_decay: float = config_field(
        0.0, help="L2 penalty: weight_decay × the weights is added to every gradient", unit="float", ge=0
    )
    betas: tuple[float, float] = config_field(
        (0.9, 0.999),
        help="Adam: decay rates of the running mean of the gradient and of its square",
        unit="pair",
        ge=0,
        lt=1,
        metavar="B1,B2",
        default_text="0.9,0.999",
    )
    eps: float = config_field(1e-8, help="Adam: added to the denominator", unit="float", gt=0)

    def validate(self) -> OptimizerConfig:
        """Every field against its declaration (`check_bounds`: types, bounds, the name's
        choices), and Nesterov's needs, which no single field's bounds can say."""
        check_bounds(self, "optimizer")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValidationError("optimizer nesterov needs momentum > 0 and dampening = 0")
        return self

    def build(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The same optimizer as a `torch.optim` object over `params`."""
        if self.name == "sgd":
            return torch.optim.SGD(
                params,
                lr=self.lr,
                momentum=self.momentum,
                dampening=self.dampening,
                nesterov=self.nesterov,
                weight_decay=self.weight_decay,
            )
        return torch.optim.Adam(params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)


# A stage built without an optimizer: plain SGD, which keeps no state (the stage tests count
# weights, versions and activations only).
PLAIN_SGD = OptimizerConfig(name="sgd")


class StageOptimizer:
    """One optimizer per stage; `step(params, grads, chunked, first)` updates `params` in place.

    `params` and `grads` are per-parameter lists: the shaped parameters and autograd's
    gradients (`chunked=False`), or 1-D chunks of a version's flat tensor and of a flat gradient
    (`chunked=True`). Each operation is a `torch._foreach_*` call, which on CPU runs the
    single-tensor kernel per parameter — the same per-element arithmetic as torch.optim's
    single-tensor path — without a Python loop over parameters. The state (momentum, Adam
    moments) is flat, allocated once, and viewed in both forms.

    `first` > 0: the lists hold the stage's parameters `first..` only (a frozen prefix, aL-SAR)
    and the others are left alone, as `torch.optim` leaves a parameter without a gradient: no
    update, no momentum or moment moves, no step counted. So each parameter keeps its own step
    count (`param_steps`: Adam's bias correction, SGD's first-step momentum), as torch.optim does.
    """

    def __init__(self, config: OptimizerConfig, layout: ParamLayout, tally: Tally) -> None:
        self.config = config.validate()
        self._layout = layout
        self._tally = tally
        self.steps = 0  # calls of `step`
        self.param_steps = [0] * len(layout.numels)  # steps each parameter took
        self._state: list[torch.Tensor] = []  # flat buffers: [momentum] or [exp_avg, exp_avg_sq]
        self._chunks: list[list[torch.Tensor]] = []  # 1-D per-parameter chunks of each buffer
        self._shaped: list[list[torch.Tensor]] = []  # shaped per-parameter views of each buffer

    @property
    def state_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._state)

    @property
    def has_second_moment(self) -> bool:
        return self.config.name == "adam"

    def second_moment(self) -> torch.Tensor | None:
        """Adam's bias-corrected second moment `v̂ = v / (1 − β₂^t)` as a new flat tensor (the
        empirical Fisher diagonal), `t` each parameter's own step count (0 for a parameter that
        freezing kept from every step: no estimate); None under SGD or before the first step."""
        if not self.has_second_moment or not self._state:
            return None
        beta2 = self.config.betas[1]
        steps = self.param_steps  # non-decreasing: a step reaches a suffix `first..`
        if steps and steps[0] == steps[-1]:
            return self._state[1] / (1 - beta2 ** steps[0])
        out = torch.zeros_like(self._state[1])
        for dst, v, taken in zip(self._layout.chunks(out), self._chunks[1], self.param_steps, strict=True):
            if taken:
                torch.div(v, 1 - beta2**taken, out=dst)
        return out

    def step(self, params: TensorList, grads: TensorList, chunked: bool, first: int = 0) -> None:
        self.steps += 1
        with torch.no_grad():
            if self.config.name == "adam":
                self._adam(params, grads, chunked, first)
            else:
                self._sgd(params, grads, chunked, first)
        self.param_steps[first:] = [taken + 1 for taken in self.param_steps[first:]]

    def _allocate(self, count: int) -> None:
        for _ in range(count):
            flat = torch.zeros(self._layout.numel, dtype=self._layout.dtype, device=self._layout.device)
            self._state.append(flat)
            self._chunks.append(self._layout.chunks(flat))
            self._shaped.append(self._layout.views(flat))
            self._tally.alloc(OPTIMIZER, flat.numel() * flat.element_size())

    def _buffers(self, chunked: bool, first: int) -> list[list[torch.Tensor]]:
        buffers = self._chunks if chunked else self._shaped
        return [b[first:] for b in buffers] if first else buffers

    def _runs(self, first: int) -> list[tuple[int, int, int]]:
        """`(start, stop, steps taken)` of the runs of parameters `first..` (positions in the
        lists) that have taken the same number of steps — one run unless freezing skipped some."""
        counts = self.param_steps[first:]
        if counts and counts[0] == counts[-1]:  # the common case: counts never decrease, so all equal
            return [(0, len(counts), counts[0])]
        runs, start = [], 0
        for i in range(1, len(counts) + 1):
            if i == len(counts) or counts[i] != counts[start]:
                runs.append((start, i, counts[start]))
                start = i
        return runs

    def _sgd(self, params: TensorList, grads: TensorList, chunked: bool, first: int) -> None:
        cfg = self.config
        if cfg.weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=cfg.weight_decay)
        if cfg.momentum != 0:
            if not self._state:
                self._allocate(1)
            bufs = self._buffers(chunked, first)[0]
            for start, stop, taken in self._runs(first):
                if taken == 0:  # torch.optim: buf = grad.clone() on a parameter's first step
                    torch._foreach_copy_(bufs[start:stop], grads[start:stop])
                else:
                    torch._foreach_mul_(bufs[start:stop], cfg.momentum)
                    torch._foreach_add_(bufs[start:stop], grads[start:stop], alpha=1 - cfg.dampening)
            grads = torch._foreach_add(grads, bufs, alpha=cfg.momentum) if cfg.nesterov else bufs
        torch._foreach_add_(params, grads, alpha=-cfg.lr)

    def _adam(self, params: TensorList, grads: TensorList, chunked: bool, first: int) -> None:
        cfg = self.config
        if not self._state:
            self._allocate(2)
        beta1, beta2 = cfg.betas
        exp_avgs, exp_avg_sqs = self._buffers(chunked, first)
        if cfg.weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=cfg.weight_decay)
        for start, stop, taken in self._runs(first):
            step = float(taken + 1)
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = cfg.lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            g, m, v = grads[start:stop], exp_avgs[start:stop], exp_avg_sqs[start:stop]
            torch._foreach_lerp_(m, g, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, g, g, value=1 - beta2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, bias_correction2_sqrt)
            torch._foreach_add_(denom, cfg.eps)
            torch._foreach_addcdiv_(params[start:stop], m, denom, value=-step_size)
