"""Train/eval mode helpers: side-effect-free passes, and when a train-mode forward is a prediction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.dropout import _DropoutNd

_MODE_DEPENDENT = (_NormBase, _DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block in eval mode and restore the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def mode_invariant(model: nn.Module) -> bool:
    """True if train and eval mode compute the same function (no BatchNorm, no dropout).

    Then the logits of a training forward *are* the eval-mode prediction, and the Oracle loop
    reads its test-then-train predictions off them instead of running a second forward.
    """
    return not any(isinstance(m, _MODE_DEPENDENT) for m in model.modules())
