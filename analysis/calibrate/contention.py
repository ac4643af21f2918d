"""Contention and jitter: one robust fit, in log space, of every compute row's duration.

    log d_i = β_g(i) + log(1 + slowdown · m_i) + log(1 + host_slowdown · x_i) + ε_i

`g` is the row's group (run, row type, stage: rows whose cost is the same linear combination of
layer times), `m_i` the jobs already running on its device, `x_i = max(0, k_i + 1 - cores)` the
excess over the host's cores when `k_i` jobs run on its host's other devices (ideal time
sharing gives `host_slowdown = 1/cores`). The twin's jitter is a mean-1 log-normal factor, so
`ε ~ N(-σ²/2, σ²)` and a group's base is `exp(β_g + σ²/2)`.

Robust by construction: rows are pooled into cells of equal `(g, m, x)` and each cell is its
median log duration (a few stalled ops cannot move a median). The jitter σ is the one whose
log-normal has the ops' own mean/median ratio (`_tail_sigma`: measured op times have heavier
tails than their body suggests, and queues grow with the mean); the body's spread (1.4826 · the
median absolute deviation around the cell medians) scales the Huber loss and is reported beside it. The cells are fitted by weighted least squares
(scipy `least_squares`, weight = rows per cell, Huber loss so that a cell of a few freak ops does
not pull). A term with no data to show it (no overlapping ops, no oversubscribed host) is not
fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from analysis.calibrate.params import MAD_TO_SIGMA, MEDIAN_EFFICIENCY, Fitted, fixed


@dataclass(frozen=True)
class ContentionFit:
    """The log-space fit of the module docstring: per group, its base and rows; then three scalars.

    `base[g]` is group `g`'s duration with no contention and no jitter, in seconds. The device
    slow-down, host slow-down and jitter σ are each `Fitted`, or fixed when no data show them.
    """

    base: np.ndarray  # per group, seconds: the duration with no contention and no jitter
    rows: np.ndarray  # per group, rows that fitted it
    slowdown: Fitted
    host_slowdown: Fitted
    jitter_sigma: Fitted
    log_ratio: np.ndarray  # per row: log(duration / its cell's median); NaN where not in a cell of ≥ 2 rows


def fit_contention(
    duration: np.ndarray, group: np.ndarray, groups: int, m: np.ndarray, host_excess: np.ndarray
) -> ContentionFit:
    positive = duration > 0
    y, g = np.log(duration[positive]), group[positive]
    cells, cell_of = np.unique(np.column_stack([g, m[positive], host_excess[positive]]), axis=0, return_inverse=True)
    cell_of = cell_of.ravel()
    count = np.bincount(cell_of, minlength=len(cells)).astype(np.float64)
    median = np.array([np.median(y[cell_of == c]) for c in range(len(cells))])
    deviation = np.abs(y - median[cell_of])
    pooled = count[cell_of] > 1
    sigma = MAD_TO_SIGMA * float(np.median(deviation[pooled])) if pooled.any() else 0.0
    tail = _tail_sigma(y - median[cell_of], cell_of, count, pooled)
    cg, cm, cx = cells[:, 0], cells[:, 1].astype(np.float64), cells[:, 2].astype(np.float64)
    rows = np.bincount(g, minlength=groups)
    fit_s, fit_h = bool((cm > 0).any()), bool((cx > 0).any())
    n_extra = int(fit_s) + int(fit_h)
    sw = np.sqrt(count)

    def unpack(p: np.ndarray) -> tuple[np.ndarray, float, float]:
        s = p[groups] if fit_s else 0.0
        h = p[groups + int(fit_s)] if fit_h else 0.0
        return p[:groups], s, h

    def residual(p: np.ndarray) -> np.ndarray:
        beta, s, h = unpack(p)
        return sw * (median - beta[cg] - np.log1p(s * cm) - np.log1p(h * cx))

    def jacobian(p: np.ndarray) -> np.ndarray:
        _, s, h = unpack(p)
        jac = np.zeros((len(cells), groups + n_extra))
        jac[np.arange(len(cells)), cg] = -sw
        if fit_s:
            jac[:, groups] = -sw * cm / (1 + s * cm)
        if fit_h:
            jac[:, groups + int(fit_s)] = -sw * cx / (1 + h * cx)
        return jac

    start = np.zeros(groups + n_extra)
    for k in np.unique(cg):
        quiet = (cg == k) & (cm == 0) & (cx == 0)
        start[k] = np.median(median[quiet if quiet.any() else cg == k])
    bounds = (np.r_[np.full(groups, -np.inf), np.zeros(n_extra)], np.inf)
    tight = {"xtol": 1e-12, "ftol": 1e-12, "gtol": 1e-12}
    # Least squares first (it converges from anywhere), then Huber from there at the scale of
    # its own residuals, so that cells of a few freak ops stop pulling.
    plain = least_squares(residual, start, jac=jacobian, bounds=bounds, **tight)
    spread = MAD_TO_SIGMA * float(np.median(np.abs(plain.fun / np.maximum(sw, 1e-12))))
    fit = plain
    if spread > 1e-9:  # below that the cells agree to the trace's printed digits: nothing to down-weigh
        fit = least_squares(
            residual, plain.x, jac=jacobian, bounds=bounds, loss="huber", f_scale=1.345 * spread, **tight
        )
    beta, s, h = unpack(fit.x)
    # se of a cell median is 1.2533·σ/√count; the weights are √count, so one unit of residual.
    J = jacobian(fit.x)
    cov = np.linalg.pinv(J.T @ J) * (MEDIAN_EFFICIENCY * sigma) ** 2
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    base = np.where(rows > 0, np.exp(beta + tail**2 / 2), 0.0)
    log_ratio = np.full(len(duration), np.nan)
    log_ratio[np.flatnonzero(positive)[pooled]] = (y - median[cell_of])[pooled]
    jitter_se = float(tail / np.sqrt(2 * max(len(y) - len(cells), 1)) * MEDIAN_EFFICIENCY)
    return ContentionFit(
        base=base,
        rows=rows,
        slowdown=Fitted("slowdown", float(s), float(se[groups]), "per running op")
        if fit_s
        else fixed("slowdown", 0.0, "per running op", "no op started while another ran on its device"),
        host_slowdown=Fitted("host_slowdown", float(h), float(se[groups + int(fit_s)]), "per excess op")
        if fit_h
        else fixed("host_slowdown", 0.0, "per excess op", "the host never ran more ops than cores"),
        jitter_sigma=Fitted(
            "jitter_sigma", tail, jitter_se, "log-std", f"mean/median of the ops (the body alone: σ = {sigma:.3g})"
        ),
        log_ratio=log_ratio,
    )


def _tail_sigma(residual: np.ndarray, cell_of: np.ndarray, count: np.ndarray, pooled: np.ndarray) -> float:
    """The log-normal σ whose mean/median ratio is the ops' own: `σ = √(2 ln(mean/median))`.

    Queues grow with the mean op time, and measured op times have heavier tails than a
    log-normal with the body's spread: matching the mean keeps the twin's throughput honest.
    Ops over 20× their cell's median (a first call, a page fault) are left out of the mean.
    """
    keep = pooled & (residual <= np.log(20.0))
    if not keep.any():
        return 0.0
    cells = np.bincount(cell_of[keep], minlength=len(count))
    mean = np.bincount(cell_of[keep], weights=np.exp(residual[keep]), minlength=len(count))
    used = cells > 0
    log_ratio = float(np.sum(cells[used] * np.log(mean[used] / cells[used])) / cells[used].sum())
    # Traces print 12 significant digits: a ratio within 1e-9 of 1 is rounding, not jitter.
    return float(np.sqrt(2 * log_ratio)) if log_ratio > 1e-9 else 0.0
