"""Random-N / Last-N B-Skip (SPEC §7): keep the latest B unprocessed data, train on N of them.

The learner holds a window of the latest `B` (= `window`) data not yet trained on; an arrival
to a full window pushes the oldest out (skipped for good). When free, the learner trains on
`min(N, |window|)` of them (`N` = `batch_size`) — a uniform random subset (Random-N) or the
most recent (Last-N) — and they leave the window. An empty window makes the learner wait for
the next arrival.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from executor.ocl.frameworks.base import (
    FrameworkOptions,
    PolicyContext,
    Selection,
    SequentialFramework,
    StreamView,
    register_framework,
)

Chooser = Callable[[np.ndarray, int], np.ndarray]


class WindowPolicy:
    """The B-Skip window; `choose(window, n)` returns indices into the window to train on."""

    def __init__(self, window: int, batch_size: int, choose: Chooser) -> None:
        self.window: deque[int] = deque(maxlen=window)
        self.batch_size = batch_size
        self.choose = choose

    def on_arrival(self, position: int, busy: bool) -> None:
        self.window.append(position)

    def select(self, now: float, view: StreamView) -> Selection | None:
        if not self.window:
            return None
        held = np.fromiter(self.window, dtype=np.int64, count=len(self.window))
        picked = np.sort(self.choose(held, min(self.batch_size, len(held))))
        self._remove(picked)
        return Selection(held[picked])

    def after_step(self, selection: Selection, view: StreamView) -> None:
        """The chosen data already left the window when they were chosen."""

    def _remove(self, picked: np.ndarray) -> None:
        keep = np.ones(len(self.window), dtype=bool)
        keep[picked] = False
        remaining = [p for p, k in zip(self.window, keep, strict=True) if k]
        self.window.clear()
        self.window.extend(remaining)

    @property
    def held(self) -> int:
        return len(self.window)


def random_n(rng: np.random.Generator) -> Chooser:
    return lambda held, n: rng.choice(len(held), size=n, replace=False)


def last_n(held: np.ndarray, n: int) -> np.ndarray:
    return np.arange(len(held) - n, len(held))


@register_framework("random-n")
def build_random_n(options: FrameworkOptions) -> SequentialFramework:
    def policy(context: PolicyContext) -> WindowPolicy:
        return WindowPolicy(options.window, options.batch_size, random_n(context.rng))

    return SequentialFramework("random-n", policy, options, held=options.window)


@register_framework("last-n")
def build_last_n(options: FrameworkOptions) -> SequentialFramework:
    return SequentialFramework(
        "last-n", lambda context: WindowPolicy(options.window, options.batch_size, last_n), options, held=options.window
    )
