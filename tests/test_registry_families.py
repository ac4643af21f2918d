"""Every name → entry family of the project is a `planner.registry.Registry` (one type, one error)."""

from __future__ import annotations

import importlib

import pytest

from executor.compensation.registry import COMPENSATORS
from executor.data.registry import DATASETS, _load_builtin_datasets
from executor.data.stream import STREAMS, _load_builtin_streams
from executor.models.registry import DEFAULT_INPUT_SHAPES, MODELS, _load_builtin_models
from executor.models.weights import KEY_MAPS
from executor.ocl.algorithms.base import ALGORITHMS
from executor.ocl.frameworks.base import FRAMEWORKS
from executor.ocl.frameworks.pipeline import PIPELINE_MODES
from executor.profiler.roofline import ROOFLINE_DEVICES
from planner.errors import ValidationError
from planner.registry import Registry
from planner.strategies import STRATEGIES
from sim.arrivals import ARRIVALS
from sim.strategies import SIM_STRATEGIES

FAMILIES = {
    "strategies": STRATEGIES,
    "arrivals": ARRIVALS,
    "sim strategies": SIM_STRATEGIES,
    "algorithms": ALGORITHMS,
    "frameworks": FRAMEWORKS,
    "pipeline modes": PIPELINE_MODES,
    "roofline devices": ROOFLINE_DEVICES,
    "models": MODELS,
    "default input shapes": DEFAULT_INPUT_SHAPES,
    "key maps": KEY_MAPS,
    "compensators": COMPENSATORS,
    "streams": STREAMS,
    "datasets": DATASETS,
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_is_a_registry_with_entries(name):
    # The lazily filled families, loaded as their lookups load them.
    importlib.import_module("executor.ocl.algorithms.catalog")
    importlib.import_module("executor.ocl.frameworks.catalog")
    _load_builtin_models()
    _load_builtin_datasets()
    _load_builtin_streams()
    family = FAMILIES[name]
    assert isinstance(family, Registry)
    assert family.names(), f"{name} has no entries"
    with pytest.raises(ValidationError, match="'no-such-name'") as exc:
        family["no-such-name"]
    assert "\n" not in str(exc.value) and family.names()[0] in str(exc.value)


def test_sim_strategy_aliases_resolve_through_the_registry():
    assert SIM_STRATEGIES["dapple"] is SIM_STRATEGIES["1f1b"]
    assert "dapple" not in SIM_STRATEGIES.names()
