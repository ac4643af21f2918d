"""`state_dict` / `load_state_dict` of what an OCL run learns (adaptive freezing, the
similarity-aware sampler, every algorithm with them): driven N steps, saved, loaded into fresh objects built
with *other* seeds, then driven M more steps, the fresh objects decide and draw bit for bit what
ones that ran N+M steps uninterrupted do — and the saved state does not move with the original.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from executor.ledger import ByteLedger
from executor.models import build_model
from executor.ocl.algorithms import ALGORITHMS, AlgorithmConfig
from executor.ocl.algorithms.base import algorithm_names
from executor.ocl.freezing import WARMUP_BATCHES, AdaptiveFreezing
from executor.ocl.learner import Learner, OptimizerConfig
from executor.ocl.replay_buffer import ReplayBuffer
from executor.ocl.samplers import WARMUP_SAMPLES, SamplerContext, SimilarityAwareSampler, build_sampler
from tests.executor.ocl.helpers import assert_same_state

CLASSES = 3
MODEL = build_model("mnistnet", (1, 8, 8), CLASSES, seed=0)


# --- adaptive freezing -------------------------------------------------------------------------
def freezing(seed: int, unfreeze_rate: float) -> AdaptiveFreezing:
    return AdaptiveFreezing([4.0, 3.0, 2.0, 1.0], unfreeze_rate, np.random.default_rng(seed))


def freezing_step(policy: AdaptiveFreezing, step: int, classifier: nn.Linear) -> int:
    """One batch: decide from its logits, then (nothing frozen) feed every layer's gradients."""
    g = torch.Generator().manual_seed(step)
    logits, labels = torch.randn(4, CLASSES, generator=g), torch.randint(0, CLASSES, (4,), generator=g)
    frozen = policy.choose(logits, labels, classifier)
    if not frozen:
        policy.observe_gradients(0, [[torch.randn(5, 3, generator=g) * (layer + 1)] for layer in range(4)])
    return frozen


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 12), st.integers(1, 12), st.sampled_from([0.0, 0.25, 0.9]))
def test_freezing_resumed_from_its_state_decides_like_one_never_stopped(n, m, unfreeze_rate):
    classifier = nn.Linear(5, CLASSES)
    torch.nn.init.normal_(classifier.weight, generator=torch.Generator().manual_seed(0))
    whole = freezing(7, unfreeze_rate)
    decisions = [freezing_step(whole, step, classifier) for step in range(n + m)]
    cut = freezing(7, unfreeze_rate)
    for step in range(n):
        freezing_step(cut, step, classifier)
    saved = cut.state_dict()
    for step in range(n, n + m):  # the original goes on: the saved state must not move with it
        freezing_step(cut, step, classifier)
    fresh = freezing(99, unfreeze_rate)
    fresh.load_state_dict(saved)
    assert_same_state(fresh.state_dict(), saved)
    assert [freezing_step(fresh, step, classifier) for step in range(n, n + m)] == decisions[n:]
    assert_same_state(fresh.state_dict(), whole.state_dict())


def test_freezing_refuses_the_state_of_another_depth():
    with pytest.raises(ValueError, match="freezing state of 3 layers"):
        freezing(0, 0.0).load_state_dict(AdaptiveFreezing([1.0, 1.0, 1.0], 0.0, np.random.default_rng(0)).state_dict())


# --- the similarity-aware sampler --------------------------------------------------------------
def sampler(seed: int) -> SimilarityAwareSampler:
    memory = ReplayBuffer(12, 1, np.random.default_rng(seed))
    built = build_sampler("similarity-aware", memory, SamplerContext(CLASSES, np.random.default_rng(seed + 1)))
    assert isinstance(built, SimilarityAwareSampler)
    return built


def sampler_step(s: SimilarityAwareSampler, step: int) -> np.ndarray:
    """Draw 3 slots, learn from synthetic per-sample gradients (a frozen prefix on odd steps),
    write 2 new samples."""
    with s.capture(MODEL):  # makes the weight subset on first use
        pass
    assert s.gradients is not None
    slots = s.draw(3)
    g = np.random.default_rng(1000 + step)
    first = s.gradients.size // 2 if step % 2 else 0
    labels = g.integers(0, CLASSES, 3)
    s.learn(torch.from_numpy(g.normal(size=(3, s.gradients.size - first))), first, labels)
    x, y = torch.full((2, 1), float(step)), torch.from_numpy(g.integers(0, CLASSES, 2))
    s.on_write(s.memory.add(x, y))
    return slots


def saved_sampler(s: SimilarityAwareSampler) -> dict:
    return {"memory": s.memory.state_dict(), "sampler": s.state_dict()}


def load_sampler(s: SimilarityAwareSampler, state: dict) -> None:
    s.memory.load_state_dict(state["memory"])
    s.load_state_dict(state["sampler"], MODEL)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 40), st.integers(1, 15))
def test_a_sampler_resumed_from_its_state_draws_like_one_never_stopped(n, m):
    whole = sampler(3)
    draws = [sampler_step(whole, step) for step in range(n + m)]
    cut = sampler(3)
    for step in range(n):
        sampler_step(cut, step)
    saved = saved_sampler(cut)
    for step in range(n, n + m):
        sampler_step(cut, step)
    fresh = sampler(50)  # other seeds: every generator and the subset come from the state
    load_sampler(fresh, saved)
    assert_same_state(saved_sampler(fresh), saved)
    for step, expected in zip(range(n, n + m), draws[n:], strict=True):
        np.testing.assert_array_equal(sampler_step(fresh, step), expected)
    assert_same_state(saved_sampler(fresh), saved_sampler(whole))


def test_the_sampler_state_is_past_warm_up_and_holds_learned_statistics():
    """The property above covers the similarity draw, not only the class-balanced warm-up."""
    s = sampler(3)
    for step in range(WARMUP_SAMPLES):
        sampler_step(s, step)
    state = s.state_dict()
    assert s.memory.seen >= WARMUP_SAMPLES
    assert state["similarity"] is not None and np.abs(state["similarity"]["mean_grad"]).sum() > 0
    assert state["counts"].sum() > 0


def test_a_sampler_loaded_before_it_learned_anything_makes_its_subset_on_first_use():
    s, fresh = sampler(3), sampler(50)
    fresh.load_state_dict(s.state_dict(), MODEL)
    assert fresh.gradients is None and fresh.similarity is None
    np.testing.assert_array_equal(sampler_step(fresh, 0), sampler_step(s, 0))
    assert_same_state(fresh.state_dict(), s.state_dict())


def test_a_sampler_refuses_the_subset_of_another_model():
    s = sampler(3)
    sampler_step(s, 0)
    other = build_model("mlp", (1, 8, 8), CLASSES, seed=0, hidden=(16,))
    with pytest.raises(ValueError, match="entries per target; this model's takes"):
        sampler(50).load_state_dict(s.state_dict(), other)


# --- every algorithm, with adaptive freezing (and the similarity-aware sampler), in a learner ---
def learner(name: str, seed: int) -> Learner:
    config = AlgorithmConfig(
        name=name,
        buffer_samples=20,
        freezing="adaptive",
        sampler="similarity-aware" if ALGORITHMS[name].replay_memory else None,
        unfreeze_rate=0.2,
        mir_candidates=6,
        consolidate_every=16,  # LwF and MAS consolidate before and after the cut
    )
    model = build_model("mnistnet", (1, 8, 8), CLASSES, seed=seed)
    return Learner(
        model,
        OptimizerConfig(name="sgd", lr=0.05),  # no optimizer state: the weights are all the rest
        config,
        num_classes=CLASSES,
        bytes_per_sample=64,
        rng=np.random.default_rng(seed),
        ledger=ByteLedger(),
    )


def learner_step(run: Learner, step: int) -> tuple[int, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(2, 1, 8, 8, generator=g), torch.randint(0, CLASSES, (2,), generator=g)
    batch = run.prepare(x, y)
    logits = run.apply(batch)
    return batch.frozen_layers, batch.x[batch.num_new :].clone(), logits


@pytest.mark.parametrize("name", algorithm_names())
def test_every_algorithm_resumes_bit_for_bit_in_a_learner(name):
    """A new algorithm whose `state_dict` misses what it learns fails here."""
    n, m = 30, 25  # past freezing's warm-up and the sampler's (2 new rows a step)
    whole = learner(name, 0)
    steps = [learner_step(whole, step) for step in range(n + m)]
    cut = learner(name, 0)
    for step in range(n):
        learner_step(cut, step)
    saved, weights = cut.algorithm.state_dict(), copy.deepcopy(cut.model.state_dict())
    fresh = learner(name, 1)
    fresh.model.load_state_dict(weights)
    fresh.algorithm.load_state_dict(saved, fresh.model)
    assert_same_state(fresh.algorithm.state_dict(), saved)
    assert saved["freezing"]["batches"] == n > WARMUP_BATCHES
    for step, (frozen, replayed, logits) in zip(range(n, n + m), steps[n:], strict=True):
        got = learner_step(fresh, step)
        assert got[0] == frozen, step
        assert torch.equal(got[1], replayed) and torch.equal(got[2], logits), step
    assert_same_state(fresh.algorithm.state_dict(), whole.algorithm.state_dict())
    assert fresh.ledger.held("sampler") == whole.ledger.held("sampler")
    assert any(frozen for frozen, _, _ in steps[n:]), "nothing froze after the cut: the test shows too little"


def test_the_learner_test_covers_learned_statistics():
    """Not vacuous: ER's sampler learned class statistics, LwF holds a teacher, MAS an anchor."""
    runs = {name: learner(name, 0) for name in ("er", "lwf", "mas")}
    for run in runs.values():
        for step in range(30):
            learner_step(run, step)
    assert np.abs(runs["er"].algorithm.state_dict()["sampler"]["similarity"]["mean_grad"]).sum() > 0
    assert runs["lwf"].algorithm.state_dict()["teacher"] is not None
    assert runs["mas"].algorithm.state_dict()["anchor"]
