"""The twin's compiled modules (pyproject's `[tool.ferret] compiled`, built with mypyc by setup.py;
docs/sim.md §6) and the guard that keeps a stale build of them from running: the one guard of
every compiled package, `planner.native` (it lives below sim so that the planner's kernels use
it too), re-exported here for the twin's callers."""

from planner.native import MANIFEST, PURE_ENV, compiled, guard

__all__ = ["MANIFEST", "PURE_ENV", "compiled", "guard"]
