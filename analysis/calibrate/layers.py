"""Per-layer forward/backward/recompute times, the per-op overhead and the optimizer step, from
the groups' uncontended base durations (`analysis.calibrate.contention`).

Each group is one linear equation in the unknowns (see `jobs.py` for the row types): a stage's
forward is `Σ_{l∈j} t_fwd_l + overhead`, and so on. Runs of different partitions give different
sums, so with enough of them every layer is determined; with one partition only each stage's
total is, and the solution nearest the profile is taken — the stage's fitted time split among
its layers by the profile's shares (the least-squares solution closest to the profile in the
metric `Σ (t - t̂)² / t̂`, which changes every layer of a stage by the same factor).

The overhead is determined when some equations have it and others with the same layers do not
(a stage split differently in another run; a backward after a recompute, which the twin charges
no second overhead); a fit below 0 (noise, or a cost the model lacks) is set to 0 and the layers
refitted. When it is not, it is fitted across stages as the intercept of
`stage time = overhead + a · profiled stage time`, which assumes the profile's ratios between
stages; with fewer than two distinct stage times it is not fitted (0).

Recompute times are fitted apart (recompute rows minus the overhead), nearest the fitted
forward times; without recompute rows they are the forward times, as the twin assumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from analysis.calibrate.jobs import BWD, BWD_AFTER_RECOMPUTE, FWD, RECOMPUTE, UPDATE
from analysis.calibrate.params import MEDIAN_EFFICIENCY, Fitted, fixed
from planner.profile import ModelProfile


@dataclass(frozen=True)
class GroupEquation:
    """One group's base duration and the layers it covers."""

    row_type: int
    layers: range
    base: float
    rows: int


@dataclass(frozen=True)
class LayerFit:
    """Per-layer forward, backward and recompute times, the per-op overhead and the optimizer step.

    Each is `Fitted` in seconds; `residuals` gives, per group, `fitted / measured base - 1`.
    """

    t_fwd: tuple[Fitted, ...]
    t_bwd: tuple[Fitted, ...]
    t_rec: tuple[Fitted, ...]
    overhead: Fitted
    update: Fitted
    residuals: tuple[float, ...]  # per group: fitted / measured base - 1


def solve_near_prior(
    A: np.ndarray, y: np.ndarray, weight: np.ndarray, prior: np.ndarray, floor: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares; among its solutions the one nearest `prior` in Σ (θ - p)² / p
    (`floor` stands in for `p` where it is smaller: parameters whose prior is 0).

    Returns (θ, covariance per unit weight, identifiable: whether each θ_k is pinned by the data).
    """
    positive = prior[prior > 0]
    floor = floor if floor is not None else (float(np.median(positive)) if len(positive) else 1.0)
    scale = np.sqrt(np.maximum(prior, floor * 1e-3))
    scale[prior <= 0] = np.sqrt(floor)
    sw = np.sqrt(weight)
    B = sw[:, None] * A * scale[None, :]
    u, *_ = np.linalg.lstsq(B, sw * (y - A @ prior), rcond=None)
    theta = prior + scale * u
    gram_pinv = np.linalg.pinv(B.T @ B)
    cov = scale[:, None] * gram_pinv * scale[None, :]
    rank = np.linalg.matrix_rank(B)
    identifiable = np.array(
        [np.linalg.matrix_rank(np.delete(B, k, axis=1)) < rank for k in range(A.shape[1])], dtype=bool
    )
    return theta, cov, identifiable


def _overhead_by_intercept(eqs: list[GroupEquation], profile: ModelProfile) -> Fitted:
    """`overhead` as the common intercept of forward and backward stage times vs the profile's."""
    use = [e for e in eqs if e.row_type in (FWD, BWD) and e.base > 0]
    x = np.array([_profiled(e, profile) for e in use])
    kind = np.array([e.row_type == BWD for e in use], dtype=np.int64)
    distinct = max((len(np.unique(x[kind == k])) for k in (0, 1)), default=0)
    if len(use) < 3 or distinct < 2:
        return fixed("op_overhead_s", 0.0, "s", "one partition with fewer than two distinct stage times")
    y = np.array([e.base for e in use])
    onehot = np.eye(2)[kind]
    design = np.column_stack([np.ones(len(use)), onehot * x[:, None]]) / y[:, None]  # relative residuals

    def residual(p: np.ndarray) -> np.ndarray:
        return design @ p - 1.0

    fit = least_squares(residual, np.array([0.0, 1.0, 1.0]), bounds=(0, np.inf), loss="huber", f_scale=0.05)
    dof = max(len(use) - 3, 1)
    var = float(np.linalg.pinv(design.T @ design)[0, 0]) * float(fit.fun @ fit.fun) / dof
    return Fitted(
        "op_overhead_s", float(fit.x[0]), float(np.sqrt(max(var, 0.0))), "s", "intercept across stages (profile ratios)"
    )


def _profiled(e: GroupEquation, profile: ModelProfile) -> float:
    times = profile.t_bwd if e.row_type in (BWD, BWD_AFTER_RECOMPUTE) else profile.t_fwd
    return float(times[e.layers.start : e.layers.stop].sum())


def fit_layers(eqs: list[GroupEquation], profile: ModelProfile, jitter_sigma: float) -> LayerFit:
    L = profile.num_layers
    main = [e for e in eqs if e.row_type != RECOMPUTE]
    has_update = any(e.row_type == UPDATE for e in main)
    n = 2 * L + 2  # t_fwd, t_bwd, overhead, update
    A = np.zeros((len(main), n))
    for i, e in enumerate(main):
        if e.row_type == UPDATE:
            A[i, 2 * L + 1] = 1.0
            continue
        offset = 0 if e.row_type == FWD else L
        A[i, offset + e.layers.start : offset + e.layers.stop] = 1.0
        if e.row_type in (FWD, BWD):
            A[i, 2 * L] = 1.0
    y = np.array([e.base for e in main])
    scale_ref = float(np.median(y[y > 0])) if (y > 0).any() else 1.0
    weight = np.array([e.rows / max(e.base, 1e-3 * scale_ref) ** 2 for e in main])
    prior = np.r_[profile.t_fwd, profile.t_bwd, 0.0, 0.0]

    measured = y.copy()
    full = A.copy()
    overhead: Fitted | None = None
    if not _pinned(A, weight, 2 * L):
        overhead = _overhead_by_intercept(main, profile)
        y = y - A[:, 2 * L] * overhead.value
        A[:, 2 * L] = 0.0
    theta, cov, identifiable = solve_near_prior(A, y, weight, prior)
    se = _stderr(cov, jitter_sigma)
    if overhead is None and theta[2 * L] < 0:  # noise (or a cost the model lacks) drove it below 0
        overhead = fixed("op_overhead_s", 0.0, "s", f"fitted {1e6 * theta[2 * L]:.3g} µs < 0 from these runs; set to 0")
        A[:, 2 * L] = 0.0
        theta, cov, identifiable = solve_near_prior(A, y, weight, prior)
        se = _stderr(cov, jitter_sigma)
    if overhead is None:
        overhead = Fitted("op_overhead_s", float(theta[2 * L]), float(se[2 * L]), "s")
    update = (
        Fitted("update_s", max(float(theta[2 * L + 1]), 0.0), float(se[2 * L + 1]), "s")
        if has_update
        else fixed("update_s", 0.0, "s", "no update rows")
    )
    theta[2 * L] = overhead.value
    fitted = full @ theta
    residuals = np.divide(fitted, measured, out=np.ones_like(fitted), where=measured > 0) - 1.0
    names = [layer.name for layer in profile.layers]
    t_fwd = _layer_params("t_fwd_s", names, theta[:L], se[:L], identifiable[:L])
    t_bwd = _layer_params("t_bwd_s", names, theta[L : 2 * L], se[L : 2 * L], identifiable[L : 2 * L])
    t_rec = _recompute(eqs, theta[:L], overhead.value, names, jitter_sigma)
    return LayerFit(t_fwd, t_bwd, t_rec, overhead, update, tuple(float(r) for r in residuals))


def _pinned(A: np.ndarray, weight: np.ndarray, column: int) -> bool:
    if not A[:, column].any():
        return False
    B = np.sqrt(weight)[:, None] * A
    return np.linalg.matrix_rank(np.delete(B, column, axis=1)) < np.linalg.matrix_rank(B)


def _stderr(cov: np.ndarray, jitter_sigma: float) -> np.ndarray:
    # weights were rows / base²: unit variance per row of relative noise; a median of n rows has
    # relative se 1.2533·σ/√n, hence the factor.
    return np.sqrt(np.clip(np.diag(cov), 0, None)) * MEDIAN_EFFICIENCY * jitter_sigma


def _layer_params(
    name: str, layers: list[str], values: np.ndarray, se: np.ndarray, identifiable: np.ndarray
) -> tuple[Fitted, ...]:
    out = []
    for layer, value, err, pinned in zip(layers, values, se, identifiable, strict=True):
        how = "fitted" if pinned else "stage total fitted; split among its layers by the profile's shares"
        if value < 0:
            how += "; fitted below 0, clipped"
        out.append(Fitted(f"{layer}.{name}", max(float(value), 0.0), float(err), "s", how))
    return tuple(out)


def _recompute(
    eqs: list[GroupEquation], t_fwd: np.ndarray, overhead: float, names: list[str], jitter_sigma: float
) -> tuple[Fitted, ...]:
    rec = [e for e in eqs if e.row_type == RECOMPUTE]
    if not rec:
        return tuple(
            fixed(f"{layer}.t_rec_s", max(float(t), 0.0), "s", "no recompute ops: the forward time")
            for layer, t in zip(names, t_fwd, strict=True)
        )
    A = np.zeros((len(rec), len(t_fwd)))
    for i, e in enumerate(rec):
        A[i, e.layers.start : e.layers.stop] = 1.0
    y = np.array([e.base - overhead for e in rec])
    weight = np.array([e.rows / max(e.base, 1e-12) ** 2 for e in rec])
    prior = np.maximum(t_fwd, 0.0)
    theta, cov, identifiable = solve_near_prior(A, y, weight, prior)
    se = _stderr(cov, jitter_sigma)
    touched = np.count_nonzero(A, axis=0) > 0
    out = []
    for k, (layer, value) in enumerate(zip(names, theta, strict=True)):
        if not touched[k]:
            out.append(fixed(f"{layer}.t_rec_s", float(prior[k]), "s", "no recompute of this layer: the forward time"))
            continue
        how = "fitted" if identifiable[k] else "stage total fitted; split by the forward times"
        out.append(Fitted(f"{layer}.t_rec_s", max(float(value), 0.0), float(se[k]), "s", how))
    return tuple(out)
