import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.errors import FerretError, ValidationError
from sim.arrivals import ARRIVALS, BurstyArrivals, FixedArrivals, PoissonArrivals, make_arrivals


def test_fixed_is_exactly_periodic():
    assert np.array_equal(FixedArrivals(0.5).times(4), [0.0, 0.5, 1.0, 1.5])


@pytest.mark.parametrize("name", ["poisson", "bursty"])
def test_random_processes_are_seeded_and_keep_their_mean(name):
    proc = make_arrivals(name, 2e-3)
    a, b = proc.times(50_000, seed=7), proc.times(50_000, seed=7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, proc.times(50_000, seed=8))
    assert a[0] == 0.0 and np.all(np.diff(a) >= 0)
    assert np.mean(np.diff(a)) == pytest.approx(2e-3, rel=0.08)


def test_bursty_is_burstier_than_poisson():
    gaps_p = np.diff(PoissonArrivals(1e-3).times(40_000, seed=1))
    gaps_b = np.diff(BurstyArrivals(1e-3).times(40_000, seed=1))
    cv = lambda g: np.std(g) / np.mean(g)  # noqa: E731
    assert cv(gaps_p) == pytest.approx(1.0, abs=0.05)  # exponential gaps: CV = 1
    assert cv(gaps_b) > 1.5


@given(st.sampled_from(["fixed", "poisson", "bursty"]), st.integers(0, 300), st.integers(0, 2**31))
def test_times_shape_and_order(name, n, seed):
    t = make_arrivals(name, 1e-3).times(n, seed)
    assert t.shape == (n,)
    assert np.all(np.diff(t) >= 0)
    if n:
        assert t[0] == 0.0


def test_trace_replay(tmp_path):
    f = tmp_path / "arr.csv"
    f.write_text("sample,t\n0,10.0\n1,10.5\n2,12.0\n")
    proc = make_arrivals(f"trace:{f}")
    assert np.array_equal(proc.times(3), [0.0, 0.5, 2.0])
    assert proc.mean_interval_s == pytest.approx(1.0)
    with pytest.raises(FerretError, match="has 3 timestamps, 5 were asked for"):
        proc.times(5)


def test_trace_errors_name_the_file(tmp_path):
    with pytest.raises(FerretError, match="not found"):
        make_arrivals(f"trace:{tmp_path / 'nope.csv'}").times(1)
    unsorted = tmp_path / "u.csv"
    unsorted.write_text("1.0\n0.5\n")
    with pytest.raises(FerretError, match="not sorted"):
        make_arrivals(f"trace:{unsorted}").times(2)
    garbage = tmp_path / "g.csv"
    garbage.write_text("t\n0.1\nabc\n")
    with pytest.raises(FerretError, match="line 3"):
        make_arrivals(f"trace:{garbage}").times(2)


def test_bad_specs():
    with pytest.raises(FerretError, match="unknown arrival process"):
        make_arrivals("sometimes", 1e-3)
    with pytest.raises(ValidationError):
        make_arrivals("fixed", 0.0)
    assert {"fixed", "poisson", "bursty", "trace"} <= set(ARRIVALS)
