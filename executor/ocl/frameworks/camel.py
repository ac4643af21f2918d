"""Camel (Li et al., SIGMOD 2022; SPEC §7): B-Skip whose N are a weighted coreset, plus replay.

Like B-Skip, the learner holds the latest `B` untrained data. When free it computes the
penultimate features of the window with the current model (charged as `|window|` feature
forwards), picks `N` by greedy class-conditional facility location (`executor.ocl.coreset`)
and weights each by the number of same-class window points nearest to it (rescaled so the
coreset's weights average 1). A window of at most `N` data is trained on whole, unweighted.
The chosen points leave the window and are offered to Camel's own reservoir buffer of
representative samples (capacity: the run's replay buffer size, ledger "camel_replay");
every step also replays as many buffer samples as it has coreset points.
"""

from __future__ import annotations

import numpy as np

from executor.ocl.coreset import select_coreset
from executor.ocl.cost import StepCost
from executor.ocl.frameworks.base import (
    FrameworkOptions,
    PolicyContext,
    Selection,
    SequentialFramework,
    StreamView,
    register_framework,
)
from executor.ocl.frameworks.bskip import WindowPolicy
from executor.ocl.replay_buffer import ReplayBuffer


class CamelPolicy(WindowPolicy):
    def __init__(self, window: int, batch_size: int, buffer: ReplayBuffer) -> None:
        super().__init__(window, batch_size, choose=lambda held, n: np.arange(n))
        self.buffer = buffer

    def select(self, now: float, view: StreamView) -> Selection | None:
        if not self.window:
            return None
        held = np.fromiter(self.window, dtype=np.int64, count=len(self.window))
        cost = StepCost()
        weight: np.ndarray | None = None
        if len(held) <= self.batch_size:
            picked = np.arange(len(held))
        else:
            features = view.features(held).cpu().numpy()
            labels = view.targets(held).cpu().numpy()
            chosen, counts = select_coreset(features, labels, self.batch_size)
            order = np.argsort(chosen)
            picked, counts = chosen[order], counts[order]
            weight = counts * (len(picked) / counts.sum())
            cost = StepCost(features=len(held))
        self._remove(picked)
        extra = self.buffer.sample(len(picked)) if len(self.buffer) else None
        return Selection(held[picked], weight=weight, extra=extra, cost=cost)

    def after_step(self, selection: Selection, view: StreamView) -> None:
        self.buffer.add(view.inputs(selection.positions), view.targets(selection.positions))


@register_framework("camel")
def build_camel(options: FrameworkOptions) -> SequentialFramework:
    def policy(context: PolicyContext) -> CamelPolicy:
        dataset = context.setup.stream.dataset
        buffer = ReplayBuffer(
            context.setup.algorithm.buffer_samples,
            dataset.stored_bytes_per_sample,
            context.rng,
            context.ledger,
            category="camel_replay",
        )
        return CamelPolicy(options.window, options.batch_size, buffer)

    return SequentialFramework("camel", policy, options, held=options.window, replay_memories=1)
