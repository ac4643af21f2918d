"""The compiled lock-step (`planner/_s3_kernel.c`) is the numpy one (`S3Batch._numpy_step`),
bit for bit: the tails it records and the batch it leaves (wherever it is read again), on
random chains (stopped part-way or not) and on rates whose exact rounding is delicate; and a
build older than its source never loads."""

from __future__ import annotations

import copy
import math
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import s3_batch
from planner.native import MANIFEST, PURE_ENV, compiled
from planner.s3_batch import S3Batch
from planner.worker_chain import ChainBuilder, stage_models
from tests.planner.profiles import partitions, profiles
from tests.planner.test_fast_search import random_profile

REPO = Path(__file__).resolve().parents[2]
HAS_COMPILER = shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is not None
needs_kernel = pytest.mark.skipif(s3_batch.kernel is None, reason="the kernel is not built here (pure Python)")


def _tails_both_ways(batch: S3Batch, memory: np.ndarray, new_beaten=None, max_steps=None, safe_memory=None):
    """The tails and the batch left, with the kernel and with numpy, from copies of `batch`
    (`new_beaten()`: a fresh stopping rule for each)."""
    out = []
    for kernel in (s3_batch.kernel, None):
        b = copy.deepcopy(batch)
        saved, s3_batch.kernel = s3_batch.kernel, kernel
        try:
            tails = b.tails(memory.copy(), max_steps, new_beaten() if new_beaten else None, safe_memory)
        finally:
            s3_batch.kernel = saved
        out.append((tails, b))
    return out


def _assert_same(both) -> None:
    """Same tails, and the same batch wherever it is read again: everywhere, except `met` and
    `share` of the columns a row has closed (the kernel stops keeping them; numpy keeps the
    batch's window) and the own loss of a closed stage."""
    (tails, batch), (ref_tails, ref_batch) = both
    for tail, ref in zip(tails, ref_tails, strict=True):
        for field in ("stages", "ratios", "rates", "memory"):
            assert np.array_equal(getattr(tail, field), getattr(ref, field)), field
        assert tail.finished == ref.finished
    for field in ("coeff", "nbytes", "saved", "g", "inv_lcm", "terms", "last_g_minus_1", "closed", "omitted"):
        assert np.array_equal(getattr(batch, field), getattr(ref_batch, field)), field
    open_ = ~batch.closed
    for field in ("own", "share_diag"):
        assert np.array_equal(getattr(batch, field)[open_], getattr(ref_batch, field)[open_]), field
    for field in ("met", "share_upper"):
        got, expected = getattr(batch, field), getattr(ref_batch, field)
        for c in range(len(open_)):
            assert np.array_equal(got[c][:, open_[c]], expected[c][:, open_[c]]), field


def _tail_batch(models) -> tuple[S3Batch, np.ndarray] | None:
    builders = []
    for model in models:
        builder = ChainBuilder(model)
        while not builder.in_tail and not builder.done:
            builder.advance()
        if not builder.done:
            builders.append(builder)
    if not builders:
        return None
    builders.sort(key=lambda b: -b.tail_steps_left())
    return S3Batch.stack([b.state.s3 for b in builders]), np.array([b.mem for b in builders], dtype=np.int64)


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_kernel_takes_the_numpy_steps_bit_for_bit(data):
    profile = data.draw(profiles(min_layers=2, max_layers=40))
    decay = data.draw(st.sampled_from([0.0, 0.3, 1.0, 30.0]))
    parts = [data.draw(partitions(profile.num_layers)) for _ in range(data.draw(st.integers(1, 6)))]
    drawn = _tail_batch(stage_models(profile, parts, (False, True), decay, 1.0))
    if drawn is None:
        return
    batch, memory = drawn
    # Rows stop at random steps (then still step while a later row goes on), or never.
    stop_at = data.draw(st.lists(st.integers(0, 40), min_size=len(memory), max_size=len(memory)))

    def new_beaten():
        calls = [0]

        def beaten(rows, mem, upper):
            calls[0] += 1
            return np.array([stop_at[r] < calls[0] // 2 for r in rows])

        return beaten

    # Rows within a memory are not asked (none, some, or all of them).
    safe_memory = data.draw(st.one_of(st.none(), st.sampled_from(sorted(memory.tolist()))))
    _assert_same(_tails_both_ways(batch, memory, new_beaten if data.draw(st.booleans()) else None, None, safe_memory))


def _one_step_batch(coeff: np.ndarray, nbytes: np.ndarray, open_stages: list[int]) -> S3Batch:
    P = len(coeff)
    closed = np.ones(P, dtype=bool)
    closed[open_stages] = False
    return S3Batch.stack([S3Batch.for_chain(coeff, nbytes, np.full(P, -0.5), closed)])


@needs_kernel
def test_the_kernel_takes_the_numpy_steps_on_wide_batches():
    """Past 64 stages the look-up tables double (129 wide): 100 stages, and short rows padded."""
    profile = random_profile(np.random.default_rng(3), 100)
    parts = [tuple(range(101)), (0, *range(10, 100, 10), 100), (0, 1, 2, 50, 99, 100), (0, *range(1, 100, 2), 100)]
    for decay in (0.0, 1.0):
        batch, memory = _tail_batch(stage_models(profile, parts, (False,), decay, 1.0))
        assert batch.table_width == 129
        _assert_same(_tails_both_ways(batch, memory))


finite = st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False)
delicate = st.sampled_from(
    [1.0, 3.0, 2.0**-52, 2.0**-53, 2.0**-54, 2.0**-106, 2.0**-160, 1e16, 1e-16, 1 / 3, 0.1, 2.0**-1074, 0.0]
)
HALF_WAY = [
    [1.0, 2.0**-53],
    [1.0, 2.0**-53, 2.0**-160],
    [1.0, 2.0**-53, 2.0**-106],
    [2.0, 2.0**-52, 2.0**-52],
    [1e16, 1.0, 1e-16],
    [0.1] * 10,
]


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from(HALF_WAY), st.lists(st.one_of(delicate, finite), min_size=1, max_size=70)))
def test_the_kernels_rates_are_math_fsum(terms):
    """The rate is the exactly rounded sum of the terms (math.fsum), half-way cases included.
    One step that changes no LCM (met = m) and zeroes its own term leaves every other term as
    it was set, so a row can hold any terms."""
    P = len(terms) + 1
    batch = _one_step_batch(np.r_[0.0, np.ones(P - 1)], np.full(P, 100), [0])
    batch.met[0, 0, 0] = P  # gcd(LCM_0, m) = m: stage 0's LCM does not change
    batch.terms[0, 1:] = terms
    both = _tails_both_ways(batch, np.array([10**9]), max_steps=1)
    _assert_same(both)
    assert both[0][0][0].rates[0] == math.fsum([0.0, *terms])


@needs_kernel
def test_ties_go_to_the_lowest_stage():
    # No rate to lose: every open stage saves its bytes at an infinite ratio.
    batch = _one_step_batch(np.zeros(6), np.full(6, 100), [1, 2, 4])
    both = _tails_both_ways(batch, np.array([10**9]))
    _assert_same(both)
    assert both[0][0][0].stages.tolist() == [1, 2, 4]


@pytest.mark.skipif(not HAS_COMPILER or os.environ.get(PURE_ENV, "") not in ("", "0"), reason="no C compiler")
def test_the_kernel_is_what_runs():
    # scripts/setup.sh builds it; CI runs the planner's tests (same plans included) on it.
    assert compiled("planner") == ["planner._s3_kernel"]


def _kernel_loads(root: Path, env: dict[str, str] | None = None) -> bool:
    """Whether a fresh interpreter importing the planner from `root` runs the compiled kernel."""
    done = subprocess.run(
        [sys.executable, "-c", "import planner.s3_batch as s; print(s.kernel is not None)"],
        cwd=root, capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if k != PURE_ENV}, **(env or {}), "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip() == "True"


@pytest.mark.skipif(not (REPO / "planner" / MANIFEST).exists(), reason="no compiled build here")
def test_a_kernel_older_than_its_source_never_loads(tmp_path):
    shutil.copytree(REPO / "planner", tmp_path / "planner", ignore=shutil.ignore_patterns("__pycache__"))
    source, manifest = tmp_path / "planner" / "_s3_kernel.c", tmp_path / "planner" / MANIFEST
    assert _kernel_loads(tmp_path)  # the copied build is fresh: it loads
    assert not _kernel_loads(tmp_path, {PURE_ENV: "1"})
    with source.open("a") as f:
        f.write("/* edited after the build */\n")
    assert not _kernel_loads(tmp_path)  # the numpy path runs instead
    source.write_text((REPO / "planner" / "_s3_kernel.c").read_text())
    assert _kernel_loads(tmp_path)
    manifest.unlink()  # nothing says which source the build was made from
    assert not _kernel_loads(tmp_path)
