"""1-Skip (SPEC §7; Ghunaim et al. 2023's real-time evaluation): one learner, one datum a step.

When the learner is free it trains on the next datum to arrive; every datum that arrives while
it is busy is skipped (still predicted). A datum arriving exactly when a step ends finds the
learner free. Of several data arriving at the same instant to a free learner, the first is
trained on and the others arrive to a busy learner.
"""

from __future__ import annotations

import numpy as np

from executor.ocl.frameworks.base import (
    FrameworkOptions,
    Selection,
    SequentialFramework,
    StreamView,
    register_framework,
)


class OneSkipPolicy:
    """1-Skip's policy: keeps the first datum that arrives while the learner is free, trains on it alone.

    Everything arriving while the learner is busy is skipped; nothing is kept between steps.
    """

    def __init__(self) -> None:
        self._waiting: int | None = None

    def on_arrival(self, position: int, busy: bool) -> None:
        if not busy and self._waiting is None:
            self._waiting = position

    def select(self, now: float, view: StreamView) -> Selection | None:
        if self._waiting is None:
            return None
        position, self._waiting = self._waiting, None
        return Selection(np.array([position], dtype=np.int64))

    def after_step(self, selection: Selection, view: StreamView) -> None:
        """1-Skip keeps nothing between steps."""

    @property
    def held(self) -> int:
        return int(self._waiting is not None)


@register_framework("1-skip")
def build_one_skip(options: FrameworkOptions) -> SequentialFramework:
    return SequentialFramework("1-skip", lambda context: OneSkipPolicy(), options)
