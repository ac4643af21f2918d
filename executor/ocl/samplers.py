"""Replay samplers — which memory slots a step replays — and their registry.

Every algorithm with a replay memory (ER, MIR's candidates, aL-SAR) takes `--sampler NAME`; the
memory's insertion policy is the algorithm's (ER and MIR: reservoir; aL-SAR: class-balanced,
`ReplayBuffer.policy`), so a sampler changes only which stored samples a step replays:

| name | draw of `k` distinct slots |
| --- | --- |
| `uniform` | uniform without replacement |
| `class-balanced` | `p_i ∝ 1 / n_{y_i}` without replacement (every stored class equally likely) |
| `similarity-aware` | aL-SAR's frequency-based draw (below) |

`similarity-aware` (SPEC §10.3): each slot keeps a discounted use count `c_i`; a class's count
is `C_y = Σ_{i∈y} c_i` (computed from the `c_i`, so an evicted sample leaves it). On every draw
of `k`, if `|Mem| > k`, all counts are multiplied by `1 − k/(K_DECAY·|Mem|)`; then
`u_i = max(0, [Σ_y S_{y_i,y}·C_y + (1 − S_{y_i,y_i})·c_i] / |Mem|)`, `p = softmax(−u/T)`, `k`
slots are drawn without replacement, and each drawn slot's `c_i` grows by 1. While fewer than
`WARMUP_SAMPLES` stream samples have been offered to the memory the draw is class-balanced
(counts still decay and grow). `S` comes from `executor.ocl.similarity`, fed with per-sample
gradients of the training steps (`capture` around the forward, `after_backward` after it).
A written slot starts with count 0.

`state_dict` / `load_state_dict` carry what a sampler's future draws depend on through a
checkpoint: its generator, and the similarity-aware one's use counts, weight subset and class
statistics.

A sampler's own state is charged as "sampler" in the ledger; `state_bytes` predicts it (fixed
part, per-slot part) for a memory budget before the sampler exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from executor.ledger import ByteLedger
from executor.models.base import require_layered
from executor.ocl.replay_buffer import ReplayBuffer
from executor.ocl.sample_grads import SubsetGradients, target_modules
from executor.ocl.similarity import ClassSimilarity
from planner.registry import Registry

WARMUP_SAMPLES = 50
K_DECAY = 2.0
SUBSET_FRACTION = 1e-4  # of each target weight (SPEC §10.3: 0.01 %)


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler is built with: the class count and the run's random stream.

    `temperature` is the `T` of the similarity-aware draw; `ledger` is where the sampler's state is
    charged (None: nowhere).
    """

    num_classes: int
    rng: np.random.Generator
    temperature: float = 2.0
    ledger: ByteLedger | None = None


class ReplaySampler:
    """Uniform draws; subclasses override what they change."""

    name: ClassVar[str] = "uniform"

    def __init__(self, memory: ReplayBuffer, context: SamplerContext) -> None:
        self.memory = memory
        self.context = context

    def draw(self, k: int) -> np.ndarray:
        """`min(k, |Mem|)` distinct slots."""
        return self.memory.sample_indices(k)

    def draw_flops(self, k: int) -> float:
        """Arithmetic of one draw of `k` (none for the simple samplers)."""
        return 0.0

    def on_write(self, slots: np.ndarray) -> None:
        """The memory wrote these slots (new samples)."""

    # What a sampler learns from the training steps (the similarity-aware one: per-sample
    # gradients). A learner: `capture` around the forward, `after_backward` after the backward.
    # A pipeline, per datum (the key): `capture` around each stage's forward and backward,
    # `stage_columns` after each stage's backward, then `learn` from the columns of every stage
    # and `forget` the rest.
    learns: ClassVar[bool] = False

    def capture(self, model: nn.Module, key: Hashable = None) -> contextlib.AbstractContextManager[None]:
        """Wraps a training forward (or backward) whose gradients it will read."""
        return contextlib.nullcontext()

    def stage_columns(self, key: Hashable = None) -> tuple[torch.Tensor, int] | None:
        """The per-sample gradient columns `(G, first)` captured under `key` since the last call."""
        return None

    def learn(self, grads: torch.Tensor, first: int, labels: np.ndarray) -> float:
        """Learn from one step's per-sample gradients (columns `first..`); returns its FLOPs."""
        return 0.0

    def forget(self, key: Hashable = None) -> None:
        """Drop what is still captured under `key`."""

    def after_backward(self, labels: np.ndarray) -> float:
        """The captured step's backward ran; returns the FLOPs spent learning from it."""
        columns = self.stage_columns()
        self.forget()
        return 0.0 if columns is None else self.learn(*columns, labels)

    def state_dict(self) -> dict[str, Any]:
        """What this sampler's future draws depend on besides the memory (its generator)."""
        return {"rng": self.context.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Continue from `state_dict()` of a sampler of the same kind over `model`."""
        self.context.rng.bit_generator.state = state["rng"]

    @classmethod
    def state_bytes(cls, model: nn.Module, num_classes: int) -> tuple[int, int]:
        """(fixed, per memory slot) bytes this sampler will store for `model`."""
        return 0, 0


SamplerClass = type[ReplaySampler]
SAMPLERS: Registry[SamplerClass] = Registry("replay sampler", {"uniform": ReplaySampler})


def register_sampler(name: str) -> Callable[[SamplerClass], SamplerClass]:
    """`SAMPLERS.register` that also gives the class its `name`."""

    def deco(cls: SamplerClass) -> SamplerClass:
        cls.name = name
        return SAMPLERS.add(name, cls)

    return deco


def class_balanced_draw(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """`min(k, len)` distinct slots with `p_i ∝ 1/n_{y_i}` (each class equally likely)."""
    k = min(k, len(labels))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.bincount(labels)
    weight = 1.0 / counts[labels]
    return np.sort(rng.choice(len(labels), size=k, replace=False, p=weight / weight.sum()))


@register_sampler("class-balanced")
class ClassBalancedSampler(ReplaySampler):
    """`class-balanced`: draws slots with `p_i ∝ 1 / n_{y_i}`, every stored class equally likely."""

    def draw(self, k: int) -> np.ndarray:
        return class_balanced_draw(self.memory.label_array, k, self.context.rng)


@register_sampler("similarity-aware")
class SimilarityAwareSampler(ReplaySampler):
    """`similarity-aware`: aL-SAR's draw from discounted use counts and class similarity (SPEC §10.3).

    Keeps a use count per slot and a `ClassSimilarity` fed by the training steps' per-sample gradients;
    class-balanced during warm-up. Its state is charged as "sampler".
    """

    def __init__(self, memory: ReplayBuffer, context: SamplerContext) -> None:
        super().__init__(memory, context)
        self.counts = np.zeros(0, dtype=np.float32)
        self.similarity: ClassSimilarity | None = None
        self.gradients: SubsetGradients | None = None
        # The weight subset is chosen from a spawned stream: choosing it shifts no draw.
        self._subset_rng = context.rng.spawn(1)[0]
        self._charge()

    # --- the draw ---
    def probabilities(self) -> np.ndarray:
        """`softmax(−u/T)` over the stored samples (SPEC §10.3)."""
        labels, n = self.memory.label_array, len(self.memory)
        counts = self.counts[:n].astype(np.float64)
        k = self.context.num_classes
        s = self.similarity.matrix() if self.similarity is not None else np.zeros((k, k))
        class_counts = np.bincount(labels, weights=counts, minlength=k)
        use = (s[labels] @ class_counts + (1.0 - s[labels, labels]) * counts) / n
        logits = -np.maximum(use, 0.0) / self.context.temperature
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def draw(self, k: int) -> np.ndarray:
        n = len(self.memory)
        if n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64)
        if n > k:
            self.counts[:n] *= 1.0 - k / (K_DECAY * n)
        rng = self.context.rng
        if self.memory.seen < WARMUP_SAMPLES:
            slots = class_balanced_draw(self.memory.label_array, k, rng)
        else:
            slots = np.sort(rng.choice(n, size=min(k, n), replace=False, p=self.probabilities()))
        self.counts[slots] += 1.0
        return slots

    def draw_flops(self, k: int) -> float:
        # S (classes² cosines over the subset), the class counts and u (≈ classes + 4 per slot), the softmax.
        n, classes = len(self.memory), self.context.num_classes
        size = self.gradients.size if self.gradients is not None else 0
        return float(classes * classes * 3 * size + n * (classes + 8))

    def on_write(self, slots: np.ndarray) -> None:
        if len(self.counts) < self.memory.capacity:
            grown = np.zeros(self.memory.capacity, dtype=np.float32)
            grown[: len(self.counts)] = self.counts
            self.counts = grown
        self.counts[slots] = 0.0
        self._charge()

    # --- learning the class similarity from the training steps ---
    learns = True

    def capture(self, model: nn.Module, key: Hashable = None) -> contextlib.AbstractContextManager[None]:
        return self._subset(model).capture(key)

    def _subset(self, model: nn.Module) -> SubsetGradients:
        """The weight subset and the class statistics over it, made on first use."""
        if self.gradients is None:
            self.gradients = SubsetGradients(
                require_layered(model, "the similarity-aware sampler"), SUBSET_FRACTION, self._subset_rng
            )
            self.similarity = ClassSimilarity(self.context.num_classes, self.gradients.size)
            self._charge()
        return self.gradients

    def stage_columns(self, key: Hashable = None) -> tuple[torch.Tensor, int] | None:
        assert self.gradients is not None
        grads, first = self.gradients.gradients(key)
        return None if grads.shape[1] == 0 else (grads, first)

    def learn(self, grads: torch.Tensor, first: int, labels: np.ndarray) -> float:
        assert self.gradients is not None and self.similarity is not None
        self.similarity.update(grads.double().cpu().numpy(), labels, first)
        rows, columns = grads.shape
        return self.gradients.flops(rows, first) + ClassSimilarity.update_flops(rows, columns)

    def forget(self, key: Hashable = None) -> None:
        if self.gradients is not None:
            self.gradients.forget(key)

    # --- checkpoints ---
    def state_dict(self) -> dict[str, Any]:
        gradients, similarity = self.gradients, self.similarity  # made together, on first use
        return {
            **super().state_dict(),
            "counts": self.counts.copy(),
            "subset_rng": self._subset_rng.bit_generator.state,
            "subset": None if gradients is None else gradients.state_dict(),
            "similarity": None if similarity is None else similarity.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        super().load_state_dict(state, model)
        self.counts = state["counts"].copy()
        if state["subset"] is not None:
            # Made as on first use (a fresh sampler's subset stream draws the same subset), then loaded.
            self._subset(model).load_state_dict(state["subset"])
            assert self.similarity is not None
            self.similarity.load_state_dict(state["similarity"])
        self._subset_rng.bit_generator.state = state["subset_rng"]
        self._charge()

    # --- bytes ---
    @property
    def nbytes(self) -> int:
        stats = 0 if self.similarity is None else self.similarity.nbytes
        entries = 0 if self.gradients is None else 8 * self.gradients.size  # the subset's indices (int64)
        return stats + entries + 4 * len(self.memory)  # one float32 use count per stored sample

    def _charge(self) -> None:
        if self.context.ledger is not None:
            self.context.ledger.set("sampler", self.nbytes)

    @classmethod
    def state_bytes(cls, model: nn.Module, num_classes: int) -> tuple[int, int]:
        size = sum(
            count
            for _, _, count in target_modules(require_layered(model, "the similarity-aware sampler"), SUBSET_FRACTION)
        )
        return ClassSimilarity.bytes_for(num_classes, size) + 8 * size, 4


def build_sampler(name: str, memory: ReplayBuffer, context: SamplerContext) -> ReplaySampler:
    return SAMPLERS[name](memory, context)
