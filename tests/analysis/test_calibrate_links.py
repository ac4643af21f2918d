"""The link fit (analysis/calibrate/links.py) fits the twin's own link model, its FIFO queue included:
spaced transfers give the plain regression's answer, bursts are read as queueing, not as slow links."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.calibrate.links import Transfers, fit_links, landings, transfers
from planner.plan import Plan, WorkerConfig
from sim import SimConfig
from tests.analysis.known_twin import true_profile, twin_run

EXACT = 1e-6
L, BW = 0.002, 2e5  # 2 ms, 200 kB/s: 1000 B hold a link 5 ms


def _generated(ready: np.ndarray, nbytes: np.ndarray, link: np.ndarray | None = None) -> Transfers:
    """Transfers that land where the twin's model (L, BW) lands them."""
    link = np.zeros(len(ready), dtype=np.int64) if link is None else link
    t = Transfers(link, ready, np.zeros(len(ready)), nbytes)
    return Transfers(link, ready, landings(t, L, BW), nbytes)


def test_landings_follow_the_fifo_by_hand():
    # 1000 B hold the link 5 ms: the second waits 4 ms for the first, the third finds it idle.
    t = Transfers(np.zeros(3, dtype=np.int64), np.array([0.0, 0.001, 0.1]), np.zeros(3), np.array([1000, 2000, 1000]))
    assert landings(t, L, BW) == pytest.approx([0.005 + L, 0.015 + L, 0.105 + L], rel=1e-12)
    # Two links queue apart: the same transfers on links 0 and 1 do not wait for each other.
    two = Transfers(np.array([0, 1]), np.array([0.0, 0.001]), np.zeros(2), np.array([1000, 2000]))
    assert landings(two, L, BW) == pytest.approx([0.005 + L, 0.011 + L], rel=1e-12)
    assert landings(t, 0.0, float("inf")) == pytest.approx([0.0, 0.001, 0.1])


@pytest.mark.parametrize(
    ("gap", "sizes"),
    [
        (None, (1000, 3000, 7000)),  # well spaced: no transfer ever waits
        (2e-3, (1000, 3000, 7000)),  # some wait
        (1e-5, (1000, 3000, 7000)),  # bursts
        (2e-3, (4000,)),  # one size: only the queue tells the bandwidth from the latency
        (1e-5, (4000,)),
    ],
    ids=["spaced", "queued", "burst", "queued-one-size", "burst-one-size"],
)
def test_transfers_made_by_the_model_give_its_latency_and_bandwidth_back(gap, sizes):
    rng = np.random.default_rng(7)
    n = 120
    if gap is None:  # 50 ms apart beats the longest hold (35 ms)
        ready = np.concatenate([np.arange(n) * 0.05, np.arange(n) * 0.05])
    else:
        ready = np.concatenate([np.cumsum(rng.exponential(gap, n)) for _ in range(2)])
    t = _generated(ready, rng.choice(sizes, 2 * n), np.repeat([0, 1], n))
    queued = t.duration > t.nbytes / BW + L + 1e-12
    assert not queued.any() if gap is None else queued.any()
    fit = fit_links(t)
    assert fit.latency.value == pytest.approx(L, rel=EXACT)
    assert fit.bandwidth.value == pytest.approx(BW, rel=EXACT)
    assert fit.latency.fitted and fit.bandwidth.fitted
    assert fit.bandwidth.stderr < EXACT * BW


def test_spaced_transfers_of_one_size_give_their_median_time_as_latency_and_leave_the_bandwidth_free():
    ready = np.arange(50) * 0.05
    t = _generated(ready, np.full(50, 4000))
    fit = fit_links(t)
    assert fit.latency.value == pytest.approx(L + 4000 / BW, rel=EXACT)
    assert fit.latency.how == "one payload size: all latency"
    assert fit.bandwidth.value == float("inf") and not fit.bandwidth.fitted
    assert "4000 B" in fit.bandwidth.how


def test_a_burst_is_queueing_not_a_slow_link():
    # 40 transfers of 1000 B made ready 0.1 ms apart: each waits behind the ones before it. The
    # plain regression of each one's time on its bytes would read the waits as the link's time.
    ready = np.arange(40) * 1e-4
    nbytes = np.where(np.arange(40) % 2 == 0, 1000, 1500)
    t = _generated(ready, nbytes)
    slope_of_plain = np.polyfit(nbytes.astype(float), t.duration, 1)[0]
    assert 1 / slope_of_plain < BW / 2 or slope_of_plain < 0  # what the fit got wrong before
    fit = fit_links(t)
    assert fit.bandwidth.value == pytest.approx(BW, rel=EXACT)
    assert fit.latency.value == pytest.approx(L, rel=EXACT)


def test_a_bursty_link_with_outliers_stays_close():
    # One transfer in ten lands 20-60 ms late (a receiver thread waiting for a core): the fit is robust.
    rng = np.random.default_rng(3)
    ready = np.concatenate([k * 1.0 + np.arange(30) * 1e-3 for k in range(6)])  # six bursts of 30
    nbytes = rng.choice([1000, 1500], len(ready))
    t = _generated(ready, nbytes)
    late = rng.random(len(ready)) < 0.1
    noisy = Transfers(t.link, t.ready, t.landed + np.where(late, rng.uniform(0.02, 0.06, len(ready)), 0.0), t.nbytes)
    fit = fit_links(noisy)
    assert fit.bandwidth.value == pytest.approx(BW, rel=0.02)
    assert fit.latency.value == pytest.approx(L, abs=5e-4)
    assert fit.bandwidth.stderr is not None and fit.bandwidth.stderr > 0


def test_no_transfers_leave_the_links_free():
    empty = Transfers(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    fit = fit_links(empty)
    assert fit.latency.value == 0 and fit.bandwidth.value == float("inf")
    assert not fit.latency.fitted and not fit.bandwidth.fitted


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 0.05),  # gap to the previous ready time
            st.floats(-0.01, 0.2),  # measured time to landing (even an impossible negative one)
            st.integers(1, 10_000),  # bytes
            st.integers(0, 2),  # link
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_fitted_model_never_lands_a_transfer_before_it_was_ready(rows):
    rows.sort(key=lambda r: r[3])
    link = np.array([r[3] for r in rows], dtype=np.int64)
    ready = np.cumsum([r[0] for r in rows])
    t = Transfers(link, ready, ready + np.array([r[1] for r in rows]), np.array([r[2] for r in rows], dtype=np.int64))
    fit = fit_links(t)
    assert fit.latency.value >= 0 and fit.bandwidth.value > 0
    predicted = landings(t, fit.latency.value, fit.bandwidth.value)
    assert np.all(predicted >= t.ready)
    # ... and each link's landings keep its FIFO order.
    for k in np.unique(link):
        assert np.all(np.diff(predicted[link == k]) >= -1e-12)


def test_a_twin_s_bursty_gpipe_run_read_as_a_real_one_gives_its_links_back(tmp_path):
    # GPipe on two devices, links so slow that a batch's activations queue; `transfers` reads the
    # twin's trace as a real run's (ready when the producing op ended, landed at the recv), so the
    # queue the twin made is in the times, and the fit must take it back out: the model is the twin's.
    config = SimConfig(link_latency_s=L, link_bandwidth_Bps=2e3)  # the 400 B between stages hold a link 200 ms
    plan = Plan("gpipe", (0, 3, 6), (WorkerConfig.default(0, 2),), ((0, 1),), 0.5, minibatch=8).validate(6)
    run = twin_run(tmp_path / "gpipe", plan, true_profile(), config, 48)
    real = transfers([("distributed", run.table)])
    assert len(real) >= 2 * 16 and len(np.unique(real.link)) == 2  # activations 0 → 1, gradients 1 → 0
    waited = real.landed - real.ready - real.nbytes / 2e3 - L
    assert waited.max() > 0.05  # the bursts queued
    fit = fit_links(real)
    assert fit.latency.value == pytest.approx(L, rel=EXACT)
    assert fit.bandwidth.value == pytest.approx(2e3, rel=EXACT)
    # The twin's own reading starts each transfer at its send, after its queue (the twin sends a
    # gradient after the optimizer step, not when the backward's row ends): one payload size and no
    # queue left in the times, so only the sum is seen, as before — and it lands every transfer exactly.
    twin = transfers([("twin", run.table)])
    own = fit_links(twin)
    assert own.latency.value == pytest.approx(L + 400 / 2e3, rel=EXACT) and not own.bandwidth.fitted
    assert landings(twin, own.latency.value, own.bandwidth.value) == pytest.approx(twin.landed, abs=1e-9)
