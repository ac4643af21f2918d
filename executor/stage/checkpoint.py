"""A quiescent `StageRuntime`'s state, saved and restored exactly (checkpoint/resume).

Quiescent: no datum in flight at the stage (every forward's backward has run), so the stage
holds one version — the current one — and no stash. What its math still depends on is then:
the current weights and their version id, the module buffers (BatchNorm statistics), the
optimizer's flat state and step counts, the compensator (λ, its buffers), every worker's open
accumulation group, and per worker the count of forwards (the `k` of SPEC §3.2's omission
rule) with the tombstones of omitted data. A runtime freshly built from the same model and
plan, given this state, continues bit for bit as the original would have.

This module reads the runtime's internals on purpose: it is the stage's own serialisation,
kept beside it so the runtime's file stays about the math.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from executor.stage.runtime import ACCUMULATION, COMPENSATOR, StageRuntime, _Group


def stage_state(runtime: StageRuntime) -> dict[str, Any]:
    if runtime.in_flight:
        raise RuntimeError(f"stage {runtime.stage}: checkpoint with {runtime.in_flight} data in flight")
    current = runtime.versions.current
    optimizer = runtime.optimizer
    return {
        "stage": runtime.stage,
        "version": current.id,
        "weights": current.flat.detach().clone(),
        "buffers": [b.detach().clone() for layer in runtime.layers for b in layer.buffers()],
        "optimizer_steps": optimizer.steps,
        "optimizer_param_steps": list(optimizer.param_steps),
        "optimizer_state": [t.clone() for t in optimizer._state],
        "compensator": runtime.compensator,
        "groups": [
            None
            if g is None
            else {"total": g.total.clone(), "oldest": g.oldest, "samples": list(g.samples), "firsts": list(g.firsts)}
            for g in runtime._groups
        ],
        "forwards": list(runtime._forwards),
        "omitted": [list(d) for d in runtime._omitted],
        "gradient_buffer": runtime._grad is not None,
        "skipped_updates": runtime.skipped_updates,
    }


def load_stage_state(runtime: StageRuntime, state: dict[str, Any]) -> None:
    """Restore `state` into a runtime that has run nothing yet (same model, plan and stage)."""
    store = runtime.versions
    current = store.current
    if state["stage"] != runtime.stage or current.id != 0 or runtime.in_flight or runtime.optimizer.steps:
        raise RuntimeError(f"stage {runtime.stage}: a checkpoint loads only into a fresh runtime of the same stage")
    with torch.no_grad():
        current.flat.copy_(state["weights"])
        for buffer, saved in zip(
            (b for layer in runtime.layers for b in layer.buffers()), state["buffers"], strict=True
        ):
            buffer.copy_(saved)
    del store._live[current.id]
    current.id = state["version"]
    store._live[current.id] = current
    optimizer = runtime.optimizer
    optimizer.steps = state["optimizer_steps"]
    optimizer.param_steps = list(state["optimizer_param_steps"])
    if state["optimizer_state"]:
        optimizer._allocate(len(state["optimizer_state"]))
        for mine, saved in zip(optimizer._state, state["optimizer_state"], strict=True):
            mine.copy_(saved)
    runtime.compensator = state["compensator"]
    runtime._tally.resize(COMPENSATOR, runtime.compensator.state_bytes)
    for worker, saved_group in enumerate(state["groups"]):
        if saved_group is None:
            continue
        group = _Group(saved_group["total"].to(current.flat.device), saved_group["oldest"], saved_group["samples"][0])
        group.samples = list(saved_group["samples"])
        group.firsts = list(saved_group["firsts"])
        runtime._groups[worker] = group
        runtime._tally.alloc(ACCUMULATION, group.total.numel() * group.total.element_size())
    runtime._forwards = list(state["forwards"])
    runtime._omitted = [deque(tuple(t) for t in d) for d in state["omitted"]]
    if state["gradient_buffer"]:
        runtime._grad_buffer()
    runtime.skipped_updates = state["skipped_updates"]
