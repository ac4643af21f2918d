"""The version store keeps exactly what in-flight data need, never alters a stash, and counts bytes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from executor.ledger import ByteLedger
from executor.stage.layout import ParamLayout
from executor.stage.tally import Tally
from executor.stage.versions import VersionStore


def _store(keep_chain: bool) -> tuple[VersionStore, nn.Linear, ByteLedger]:
    lin = nn.Linear(3, 2)  # 8 parameters, 32 bytes per version
    layout = ParamLayout([lin])
    ledger = ByteLedger()
    store = VersionStore(layout, layout.pack_initial(), Tally(ledger), keep_chain)
    return store, lin, ledger


def _step(store: VersionStore) -> None:
    new, _ = store.advance()
    with torch.no_grad():
        new.flat.add_(1.0)  # any change: the test follows values by version id


def test_an_unreferenced_current_version_is_updated_in_place():
    store, lin, ledger = _store(keep_chain=False)
    before = store.current.flat.data_ptr()
    _step(store)
    assert store.current.id == 1 and store.held == 1
    assert store.current.flat.data_ptr() == before
    assert ledger.held("weights") == 32
    assert lin.weight.data_ptr() == before  # the module computes with the current version


def test_a_stashed_version_is_copied_on_write_and_freed_on_release():
    store, lin, ledger = _store(keep_chain=False)
    stash = store.acquire()
    kept = stash.flat.clone()
    _step(store)
    assert store.held == 2 and ledger.held("weights") == 64
    assert torch.equal(stash.flat, kept)  # the stash is untouched by the update
    assert lin.weight is store.current.params[0]  # modules now point at the new version
    store.release(stash)
    assert store.held == 1 and ledger.held("weights") == 32
    with pytest.raises(RuntimeError, match="holds no reference"):
        store.release(stash)


def test_the_chain_keeps_intermediate_versions_until_the_oldest_is_released():
    store, _, _ = _store(keep_chain=True)
    old = store.acquire()
    _step(store)
    _step(store)  # version 1 is referenced by nobody but lies on version 0's chain
    assert store.held_ids == (0, 1, 2)
    assert [v.id for v in store.chain(old)] == [0, 1, 2]
    store.release(old)
    assert store.held_ids == (2,)


@given(
    ops=st.lists(st.sampled_from(["acquire", "release", "step"]), max_size=60),
    keep_chain=st.booleans(),
    picks=st.lists(st.integers(0, 1000), min_size=60, max_size=60),
)
def test_held_versions_are_exactly_the_needed_ones(ops, keep_chain, picks):
    store, _, ledger = _store(keep_chain)
    outstanding = []  # (version object, values at acquire time)
    values = {0: store.current.flat.clone()}
    for op, pick in zip(ops, picks, strict=False):
        if op == "acquire":
            v = store.acquire()
            outstanding.append((v, v.flat.clone()))
        elif op == "release" and outstanding:
            v, _ = outstanding.pop(pick % len(outstanding))
            store.release(v)
        elif op == "step":
            _step(store)
            values[store.current.id] = store.current.flat.clone()
        for v, snapshot in outstanding:
            assert torch.equal(v.flat, snapshot), "a stashed version changed"
        referenced = {v.id for v, _ in outstanding}
        current = store.current.id
        expected = set(range(min(referenced | {current}), current + 1)) if keep_chain else referenced | {current}
        assert set(store.held_ids) == expected
        assert ledger.held("weights") == 32 * len(expected)
        assert torch.equal(store.current.flat, values[current])
