"""Stale-gradient compensation (SPEC §5): the configuration, the interface, the approximator A.

A stage computes a datum's gradient `g` against the weight version its forward used (the
*stash*, version `s`) and applies it when the stage is at version `c = s + τ`. A compensator
turns `g` into an estimate of the gradient at the current weights. Gradients and versions are
the stage's flat 1-D tensors (executor/stage/layout.py), so every compensator is a handful of
single-tensor operations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from planner.config_field import check_bounds, config_field
from planner.errors import ValidationError


def compensator_names() -> list[str]:
    """The registered compensators' names (the registry imports this module: read it lazily)."""
    from executor.compensation.registry import COMPENSATORS

    return list(COMPENSATORS)


@dataclass(frozen=True)
class CompensationConfig:
    """Which compensator every stage uses, and its hyper-parameters (defaults from SPEC §5).

    `lambda0` is Iter-Fisher's initial λ and Fisher's fixed λ (Ferret: λ = 0.2); `nu`, `alpha`,
    `eta_lambda` drive Iter-Fisher's λ auto-tuning (Alg. 1) — `eta_lambda = 0` keeps λ fixed
    and allocates no buffers; `gap_ema` is Gap-Aware's EMA coefficient for the step size `C`.
    Each value must be finite and within its field's declared bounds. On the CLI the name is
    `--compensation`, the rest `--compensation-option KEY=VALUE`.
    """

    name: str = config_field(
        "none",
        help="stale-gradient compensation (docs/executor.md): {names}",
        names=compensator_names,
        flag="compensation",
    )
    lambda0: float = config_field(
        0.2, help="Iter-Fisher's initial λ, Fisher's fixed λ", unit="float", setting_of="compensation"
    )
    nu: float = config_field(
        2e-6, help="Iter-Fisher: weight ν of λ² in λ's tuning loss", unit="float", ge=0, setting_of="compensation"
    )
    alpha: float = config_field(
        0.9, help="Iter-Fisher: EMA coefficient of λ's tuning", unit="float", ge=0, lt=1, setting_of="compensation"
    )
    eta_lambda: float = config_field(
        1e-3, help="Iter-Fisher: λ's step size, 0 keeps λ fixed", unit="float", ge=0, setting_of="compensation"
    )
    gap_ema: float = config_field(
        0.9, help="Gap-Aware: EMA coefficient of the step size C", unit="float", ge=0, lt=1, setting_of="compensation"
    )

    def validate(self) -> CompensationConfig:
        names = compensator_names()
        if self.name not in names:
            raise ValidationError(f"unknown compensation {self.name!r}; choose one of {', '.join(names)}")
        check_bounds(self, "compensation")
        return self


class StageProbe(Protocol):
    """What a compensator may ask its stage (`Compensator.bind`), beyond gradients and versions."""

    def hvp(self, vector: torch.Tensor) -> torch.Tensor:
        """`H · vector`, H the Hessian, at the stash, of the datum whose gradient is being
        compensated (its stage graph: `⟨output, grad_output⟩`, or the loss at the last stage).
        Only inside `compensate`, and only for a compensator with `needs_hvp`."""
        ...

    def second_moment(self) -> torch.Tensor | None:
        """The optimizer's bias-corrected second-moment estimate (Adam's v̂ = E[g⊙g]), flat; None
        before the first step."""
        ...

    @property
    def has_second_moment(self) -> bool:
        """Whether the stage's optimizer keeps a second moment (Adam)."""
        ...


class Compensator(ABC):
    """Per-stage compensation state. Subclasses set `name` and override `compensate`."""

    name: str = ""
    #: wants every intermediate version `s, s+1, …, c` (the stage then keeps the chain)
    needs_chain: bool = False
    #: wants `(old, new)` of every optimizer step of the stage (`observe_step`)
    observes_steps: bool = False
    #: calls `probe.hvp` (the stage then builds the stale gradient's graph for double-backward)
    needs_hvp: bool = False
    #: stage-weight-sized buffers it keeps once running (the twin's `compensation_buffers`)
    weight_buffers: int = 0

    def bind(self, probe: StageProbe) -> None:
        """Called once by the stage that owns this compensator. Override to keep the probe (and
        to refuse a stage that cannot serve it, with a ValueError)."""
        return None

    @abstractmethod
    def compensate(self, grad: torch.Tensor, versions: Sequence[torch.Tensor], staleness: int) -> torch.Tensor:
        """Bring `grad`, computed at `versions[0]`, to the current weights `versions[-1]`.

        `versions` is the whole chain (`staleness + 1` tensors) when `needs_chain`, else
        `[stash, current]`. Called only for `staleness ≥ 1`. May overwrite `grad`.
        """

    def observe_step(self, old: torch.Tensor, new: torch.Tensor) -> None:
        raise RuntimeError(f"compensator {self.name!r} does not observe optimizer steps")

    @property
    def state_bytes(self) -> int:
        """Bytes of tensors this compensator keeps between calls."""
        return 0


def fisher_approx(grad: torch.Tensor, new: torch.Tensor, old: torch.Tensor, lam: float) -> torch.Tensor:
    """A(g, θ_new, θ_old) = g + λ · g ⊙ g ⊙ (θ_new − θ_old)  (F5–F8, diagonal Fisher as Hessian)."""
    return fisher_approx_(grad.clone(), new, old, lam)


def fisher_approx_(grad: torch.Tensor, new: torch.Tensor, old: torch.Tensor, lam: float) -> torch.Tensor:
    """`fisher_approx` overwriting `grad` (one temporary instead of three)."""
    return grad.addcmul_(grad * grad, torch.sub(new, old), value=lam)
