"""Train/eval mode helpers: side-effect-free passes, and when a train-mode forward is a prediction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.dropout import _DropoutNd

_MODE_DEPENDENT = (_NormBase, _DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Run a block with `modules` in eval mode and restore each one's previous mode afterwards
    (one model, or the layers of a stage)."""
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, was_training, strict=True):
            m.train(mode)


def mode_invariant(model: nn.Module) -> bool:
    """True if train and eval mode compute the same function (no BatchNorm, no dropout).

    Then the logits of a training forward *are* the eval-mode prediction, and the Oracle loop
    reads its test-then-train predictions off them instead of running a second forward.
    """
    return not any(isinstance(m, _MODE_DEPENDENT) for m in model.modules())
