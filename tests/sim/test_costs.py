"""The cost model: the one affine fit, per-stage profile costs, and what the twin charges with them."""

from __future__ import annotations

import numpy as np
import pytest

from planner.profile import LayerProfile, ModelProfile
from sim import SimConfig, sequential_plan, simulate
from sim.costs import Affine, ProfileCosts, fit_affine, stage_fits


class Given:
    """These arrival times, whatever the seed."""

    name = "given"

    def __init__(self, times: list[float]) -> None:
        self.arrival_s = np.asarray(times, dtype=np.float64)
        self.mean_interval_s = float(np.mean(np.diff(self.arrival_s)))

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        return self.arrival_s[:n]


def profile(t_fwd: float, t_bwd: float, batch: int = 1, layers: int = 2) -> ModelProfile:
    return ModelProfile(
        "m", tuple(LayerProfile(f"l{i}", t_fwd, t_bwd, 10, 10) for i in range(layers)), batch_size=batch
    )


def test_fit_affine_exact_cases_and_non_negative_parts():
    assert fit_affine([1, 4], [1.0, 2.5]) == Affine(pytest.approx(0.5), pytest.approx(0.5))
    assert fit_affine([2], [3.0]) == Affine(0.0, 1.5)  # one batch size: a line through 0
    assert fit_affine([1, 4], [2.0, 1.0]) == Affine(1.5, 0.0)  # noise: a larger batch looked cheaper
    negative = fit_affine([1, 2], [1e-3, 4e-3])
    assert negative.fixed_s == 0.0 and negative.per_row_s == pytest.approx((1e-3 + 2 * 4e-3) / 5)


def test_stage_fits_sum_each_stage_and_fit_over_batch_sizes():
    one, four = profile(0.25, 0.5, layers=3), profile(0.5, 0.75, batch=4, layers=3)
    fwd = stage_fits((one, four), (0, 1, 3), lambda p: p.t_fwd)
    assert fwd[0].seconds(1) == pytest.approx(0.25) and fwd[0].seconds(4) == pytest.approx(0.5)
    assert fwd[1].seconds(1) == pytest.approx(0.5) and fwd[1].seconds(4) == pytest.approx(1.0)
    assert Affine(0.5, 0.25).share(2) == 0.5 and Affine(0.5, 0.25).seconds(2) == 1.0


def test_profile_costs_take_time_scale_overhead_update_and_links_from_the_config():
    config = SimConfig(time_scale=2.0, op_overhead_s=0.1, update_s=0.2, link_latency_s=0.3, link_bandwidth_Bps=100.0)
    costs = ProfileCosts.from_profiles((profile(0.25, 0.5),), (0, 1, 2), config)
    assert costs.forward(1) == Affine(0.0, 0.5) and costs.backward(0) == Affine(0.0, 1.0)
    assert costs.recompute(0) == costs.forward(0)
    assert (costs.overhead_s(0), costs.update_s(1), costs.transfer_s(50)) == (0.1, 0.2, (0.5, 0.3))
    assert not costs.free_links and ProfileCosts.from_profiles((profile(1, 1),), (0, 2)).free_links


@pytest.mark.parametrize("fitted", [False, True])
def test_a_sequential_learner_pays_the_fitted_cost_of_a_batch_step(fitted):
    # Whole model: 1-row step 1.5 s; at batch 4 a step takes 2.5 s (fixed 7/6 s, 1/3 s per row).
    one = profile(0.25, 0.5)
    profiles = (one, profile(0.5, 0.75, batch=4)) if fitted else (one,)
    costs = ProfileCosts.from_profiles(profiles, (0, 2))
    plan = sequential_plan(2, 0.1, "last-n", minibatch=3)
    arrivals = Given([0.0, 0.1, 0.2, 0.3])
    result = simulate(plan, one, 4, arrivals, config=SimConfig(input_buffer=3), costs=costs)
    # Datum 0 alone (1.5 s), then data 1–3 as one 3-row step: 7/6 + 3/3 s fitted, 3 × 1.5 s linear.
    three = 13 / 6 if fitted else 4.5
    np.testing.assert_allclose(result.update_s[:, 0], [1.5, 1.5 + three, 1.5 + three, 1.5 + three])
