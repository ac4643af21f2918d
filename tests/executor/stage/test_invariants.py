"""Invariants of StageRuntimes under any valid op order (hypothesis picks the interleaving).

Valid: each worker's data pass a stage's forward, and later its backward, in arrival order;
a datum's forward at stage j follows its forward at j−1, its backward at j follows the one at
j+1 (and the last forward). Anything else — how workers and stages interleave — is free.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.compensation import CompensationConfig
from executor.ledger import ByteLedger
from executor.stage import StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain

P, N, PER_WORKER, WIDTH = 3, 2, 5, 3


@st.composite
def setups(draw):
    workers = tuple(
        WorkerConfig(
            n,
            draw(st.booleans()),
            tuple(draw(st.integers(1, 2)) for _ in range(P)),
            tuple(draw(st.integers(0, P - 1 - j)) for j in range(P)),
        )
        for n in range(N)
    )
    return workers, draw(st.sampled_from(["none", "fisher", "iter-fisher"]))


@settings(max_examples=30)
@given(setup=setups(), data=st.data())
def test_stashes_never_change_and_the_ledger_is_exact_under_any_interleaving(setup, data):
    workers, compensation = setup
    model = linear_chain(P, WIDTH)
    plan = Plan("ferret", tuple(range(P + 1)), workers, default_placement(N, P), 1.0)
    ledger = ByteLedger()
    comp = CompensationConfig(compensation, eta_lambda=0.0)
    runtimes = [StageRuntime(model, plan, j, compensation=comp, ledger=ledger) for j in range(P)]
    samples = [[n + N * k for k in range(PER_WORKER)] for n in range(N)]
    x = {s: torch.randn(1, WIDTH, generator=torch.Generator().manual_seed(s)) for row in samples for s in row}
    fwd_done = {(n, j): 0 for n in range(N) for j in range(P)}  # forwards done, per worker and stage
    bwd_next = {(n, j): 0 for n in range(N) for j in range(P)}  # next datum index to back-propagate
    outputs, grads, stopped = {}, {}, set()
    stash_values = {}  # (stage, sample) -> the weights its forward ran on
    weight_bytes = [rt.layout.nbytes for rt in runtimes]

    def ready():
        ops = []
        for n in range(N):
            for j in range(P):
                k = fwd_done[(n, j)]
                if k < PER_WORKER and (j == 0 or fwd_done[(n, j - 1)] > k):
                    ops.append(("fwd", n, j, k))
                k = bwd_next[(n, j)]
                if k < fwd_done[(n, j)]:
                    s = samples[n][k]
                    if j == P - 1 or (s, j + 1) in grads or (s, j + 1) in stopped:
                        ops.append(("bwd", n, j, k))
        return ops

    while ops := ready():
        kind, n, j, k = data.draw(st.sampled_from(ops))
        s, rt = samples[n][k], runtimes[j]
        if kind == "fwd":
            h = x[s] if j == 0 else outputs[(s, j - 1)]
            result = rt.forward(n, s, h)
            outputs[(s, j)] = result.output
            if result.stored:
                stash_values[(j, s)] = (result.version, rt.versions.current.flat.clone())
            fwd_done[(n, j)] += 1
        else:
            bwd_next[(n, j)] += 1
            if (s, j + 1) in stopped or (j < P - 1 and (s, j + 1) not in grads):
                stopped.add((s, j))  # a stage above stopped this datum: the executor asks nothing
                continue
            if j < P - 1:
                result = rt.backward(n, s, grads.pop((s, j + 1)))
            else:
                result = rt.backward(n, s, loss_fn=lambda z: z.square().sum())
            if result.ran and j > 0:
                grads[(s, j)] = result.grad_input
            elif not result.ran:
                stopped.add((s, j))
            stash_values.pop((j, s), None)
        # Every stash still in flight holds exactly the weights its forward ran on.
        for stage in range(P):
            for (sj, _), (version, values) in stash_values.items():
                if sj == stage:
                    assert torch.equal(runtimes[stage].versions.version(version).flat, values)
        # The ledger's weights are exactly the live versions; nothing else is unaccounted.
        for stage, rt in enumerate(runtimes):
            assert rt.held_bytes("weights") == rt.versions.held * weight_bytes[stage]
            in_flight_versions = {version for (sj, _), (version, _) in stash_values.items() if sj == stage}
            assert in_flight_versions <= set(rt.versions.held_ids)
            if not rt.versions.keep_chain:
                assert set(rt.versions.held_ids) == in_flight_versions | {rt.current_version}
    # All data done: only the current weights, the gradient buffers (and open groups) remain.
    for stage, rt in enumerate(runtimes):
        assert rt.in_flight == 0 and rt.held_bytes("activations") == 0
        assert rt.versions.held == 1
        assert rt.held_bytes("accumulation") == rt.open_groups * weight_bytes[stage]
