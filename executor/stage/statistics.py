"""BatchNorm running statistics in a pipeline with several data in flight."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def running_statistics(layers: tuple[nn.Module, ...]) -> list[tuple[nn.Module, str]]:
    """The buffer slots a forward updates in place: BatchNorm running statistics."""
    slots = []
    for layer in layers:
        for module in layer.modules():
            updates = isinstance(module, _BatchNorm) and type(module).forward is _BatchNorm.forward
            if updates and module.track_running_stats:
                slots += [(module, name) for name in _STATISTICS if module._buffers.get(name) is not None]
    return slots


def renew_statistics(slots: list[tuple[nn.Module, str]]) -> None:
    """Give the modules fresh copies of their running statistics before a forward.

    BatchNorm updates its running statistics in place and autograd saves them with the graph;
    with several data in flight, the next forward's update would invalidate the graphs of the
    earlier ones. Each forward therefore updates (and its graph keeps) its own copy — a few
    floats per channel.
    """
    for owner, name in slots:
        tensor = owner._buffers[name]
        assert tensor is not None, f"{type(owner).__name__}.{name} was removed after the stage was built"
        owner._buffers[name] = tensor.clone()


@contextmanager
def statistics_kept(slots: list[tuple[nn.Module, str]]) -> Iterator[None]:
    """Run an extra forward (a recomputation, a measurement) on throwaway copies of the running
    statistics and put the modules' own back afterwards: they move once per datum, at its forward."""
    kept = [owner._buffers[name] for owner, name in slots]
    renew_statistics(slots)
    try:
        yield
    finally:
        for (owner, name), tensor in zip(slots, kept, strict=True):
            owner._buffers[name] = tensor
