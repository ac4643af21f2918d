"""Camel's coreset: greedy class-conditional facility location (Li et al., SIGMOD 2022; SPEC §7).

Given the features `f(x_i)` of a window of `m` points (L2-normalised here) and their labels,
choose `k` points `S` greedily to maximise

    F(S) = d_max − (1/m) · Σ_i  min_{s ∈ S, y_s = y_i} ‖f(x_i) − f(x_s)‖

where a point whose class has no chosen point yet counts `d_max` (the largest pairwise distance
in the window), so `F(∅) = 0` and every gain is ≥ 0. Each step adds the point with the largest
gain (ties: the lowest index). Each chosen point is weighted by the number of same-class points
it is nearest to (itself always included; other ties go to the earlier-chosen point); points of
a class with no chosen point are represented by nobody.
"""

from __future__ import annotations

import numpy as np


def l2_normalise(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def pairwise_distances(features: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", features, features)
    d2 = sq[:, None] + sq[None, :] - 2.0 * features @ features.T
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(np.maximum(d2, 0.0))


def facility_location_objective(distances: np.ndarray, labels: np.ndarray, chosen: np.ndarray) -> float:
    """`F(S)` for a chosen set (used by tests and to report the coreset's quality)."""
    d_max = float(distances.max()) if distances.size else 0.0
    cost = np.full(len(labels), d_max)
    for s in np.asarray(chosen, dtype=np.int64):
        same = labels == labels[s]
        cost[same] = np.minimum(cost[same], distances[same, s])
    return d_max - float(cost.mean()) if len(labels) else 0.0


def greedy_coreset(distances: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices chosen (in the order picked) and their weights, from a distance matrix."""
    m = len(labels)
    if distances.shape != (m, m):
        raise ValueError(f"distance matrix of shape {distances.shape} for {m} points")
    k = min(k, m)
    same_class = labels[:, None] == labels[None, :]
    d_max = float(distances.max()) if m else 0.0
    cost = np.full(m, d_max)
    available = np.ones(m, dtype=bool)
    chosen = np.empty(k, dtype=np.int64)
    for step in range(k):
        # gain[s] = Σ_{i: y_i = y_s} max(0, cost_i − D[i, s])
        gain = np.where(same_class, np.maximum(cost[:, None] - distances, 0.0), 0.0).sum(axis=0)
        gain[~available] = -1.0
        best = int(np.argmax(gain))
        chosen[step] = best
        available[best] = False
        cost = np.where(same_class[:, best], np.minimum(cost, distances[:, best]), cost)
    return chosen, _nearest_counts(distances, same_class, chosen)


def _nearest_counts(distances: np.ndarray, same_class: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    if len(chosen) == 0:
        return np.zeros(0, dtype=np.int64)
    to_chosen = np.where(same_class[:, chosen], distances[:, chosen], np.inf)
    nearest = np.argmin(to_chosen, axis=1)  # first minimum = earliest chosen among ties
    nearest[chosen] = np.arange(len(chosen))  # a chosen point represents itself, even if duplicated
    represented = np.isfinite(to_chosen[np.arange(len(to_chosen)), nearest])
    return np.bincount(nearest[represented], minlength=len(chosen)).astype(np.int64)


def select_coreset(features: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Camel's choice on raw features: normalise, measure distances, run the greedy."""
    distances = pairwise_distances(l2_normalise(np.asarray(features, dtype=np.float64)))
    return greedy_coreset(distances, np.asarray(labels), k)
