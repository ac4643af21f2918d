"""Hypothesis strategies and small fixed profiles for the planner tests."""

from __future__ import annotations

from hypothesis import strategies as st

from planner.profile import LayerProfile, ModelProfile

# Times and sizes span four orders of magnitude, as the issue asks.
times = st.floats(min_value=1e-5, max_value=1e-1, allow_nan=False, allow_infinity=False)
sizes = st.integers(min_value=1_000, max_value=10_000_000)


@st.composite
def profiles(draw, min_layers: int = 1, max_layers: int = 64) -> ModelProfile:
    n = draw(st.integers(min_layers, max_layers))
    layers = tuple(LayerProfile(f"l{i}", draw(times), draw(times), draw(sizes), draw(sizes)) for i in range(n))
    return ModelProfile("random", layers, source="synthetic")


@st.composite
def partitions(draw, num_layers: int) -> tuple[int, ...]:
    cuts = draw(st.sets(st.integers(1, num_layers - 1), max_size=num_layers - 1)) if num_layers > 1 else set()
    return (0, *sorted(cuts), num_layers)


def hand_profile() -> ModelProfile:
    """Three layers with round numbers, used by the hand-computed cases."""
    return ModelProfile(
        "hand",
        (
            LayerProfile("l0", 1.0, 2.0, 100, 10),
            LayerProfile("l1", 2.0, 3.0, 200, 20),
            LayerProfile("l2", 0.5, 1.0, 50, 5),
        ),
        source="synthetic",
    )


def uniform_profile(num_layers: int, tf: float = 1.0, tb: float = 2.0, w: int = 100, a: int = 10) -> ModelProfile:
    layers = tuple(LayerProfile(f"l{i}", tf, tb, w, a) for i in range(num_layers))
    return ModelProfile("uniform", layers, source="synthetic")
