"""Link latency and bandwidth: the twin's own link model, its FIFO queue included, fitted to the transfers.

The twin's link (sim/links.py) is a FIFO per (source, destination) device. A transfer handed to it
at `ready_i` starts when the link is free, holds it `bytes_i / bandwidth` and lands `latency` later:

    free_i = max(ready_i, free_{i-1}) + c · bytes_i        c = 1 / bandwidth (s per byte)
    land_i = free_i + latency

`transfers` gives every directed link's transfers in wire order (each run's links are its own) with
their ready times, landings and bytes. Unrolled, `free_i = ready_j + c · (bytes of j..i)` where `j`
starts the busy period `i` is in (the last transfer up to `i` that found the link idle), so for a
busy-period structure the landing is linear in (latency, c): `land_i - ready_j = latency + c · x_i`
with `x_i` the bytes the link has sent in the busy period up to and including `i`. Transfers that
find the link idle have `j = i`: time from ready to landing on bytes, the plain regression this fit
was before it saw queues. A burst's later transfers wait behind the earlier ones; the plain
regression read those waits as time per byte of their own (GPipe's mini-batch of activations:
61-301 kB/s where the wire does MB/s); here they are the queue, and how fast the burst's landings
follow each other is the bandwidth (even with one payload size).

The fit, in two steps, least absolute misses then Huber:

1. the structure depends on c, so c is searched first: for each c of a geometric grid over
   [0, c_max] (c_max: the largest `duration / bytes`, beyond which every landing comes too late)
   the model's landings follow from the recursion, the latency is the median of what is left
   (≥ 0; its closed form under absolute loss), and the c whose summed absolute miss is least is
   refined by a bounded Brent search between its grid neighbours. Absolute loss needs no scale,
   which no one knows before the fit, and the heavy tail of real transfers (a receiver thread
   waiting for a core lands a message tens of ms late) moves it little. The objective has kinks
   where the structure changes and need not be unimodal, hence the grid before the local search.
2. at that c's structure, a Huber regression (scipy `least_squares`, both terms ≥ 0) of
   `land_i - ready_j` on `x_i` gives (latency, c) and their standard errors (Jacobian × the
   residuals' MAD spread: with the structure fixed near the fit, this is the model's local
   linearisation); repeated while the new c changes the structure (at most `POLISH_ROUNDS`),
   keeping the round whose landings miss least under the same loss. Huber's scale is 1.345 · the
   MAD spread of step 1's misses, at least `RESOLUTION` · the median transfer time (most
   transfers fitted exactly leave a MAD of ~0, at which the solver stalls; below the floor the
   loss is squares, so exact data stay exact). The plain regression took 1.345 · the spread of
   the times themselves, which counts the bytes' own spread as noise.

With one payload size and no queue at the fit only the sum is seen: the latency takes it all and
the bandwidth stays free (∞). A slope of 0, or a bandwidth beyond what a trace resolves, leaves the
bandwidth free (not fitted). Without send rows the links are free, as in the twin's default. The
fitted model never lands a transfer before it was ready (latency ≥ 0, c ≥ 0), and `landings` is
the twin's recursion, for checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.optimize import least_squares, minimize_scalar

from analysis.calibrate.params import MAD_TO_SIGMA, MEDIAN_EFFICIENCY, Fitted, fixed
from analysis.trace_table import KIND_CODES, TraceTable
from planner.quantities import MAX_BANDWIDTH_BPS

GRID = 161  # geometric grid points of c over [c_max · 1e-8, c_max], beside c = 0
GRID_SPAN = 1e-8
POLISH_ROUNDS = 8
RESOLUTION = 1e-3  # Huber's scale is at least this share of the transfers' median time
HUBER_K = 1.345  # Huber's tuning constant, in units of the residuals' σ (95 % efficiency)


@dataclass(frozen=True)
class LinkFit:
    """The twin's link model fitted to the transfers: `latency` (s) and `bandwidth` (bytes/s).

    No transfers: latency 0 and bandwidth inf, both marked not fitted (free links).
    """

    latency: Fitted
    bandwidth: Fitted  # bytes per second; inf = free


@dataclass(frozen=True, eq=False)
class Transfers:
    """Measured transfers, grouped by directed link and in wire order within each link.

    `link[i]` numbers transfer i's (run, source device, destination device); `ready` is when it was
    handed to its link (s), `landed` when it reached the other side (s), `nbytes` its size.
    Equal `link` values are contiguous.
    """

    link: np.ndarray
    ready: np.ndarray
    landed: np.ndarray
    nbytes: np.ndarray

    def __len__(self) -> int:
        return len(self.link)

    @property
    def duration(self) -> np.ndarray:
        return self.landed - self.ready


def landings(t: Transfers, latency_s: float, bandwidth_Bps: float) -> np.ndarray:
    """When the twin's link model (`sim.links.Links`) lands each of `t`'s transfers."""
    return _free(t, _per_byte(bandwidth_Bps)) + latency_s


def fit_links(t: Transfers) -> LinkFit:
    """The twin's link model fitted to `t`, queue included (the module docstring says how)."""
    if len(t) == 0:
        return LinkFit(
            fixed("link_latency_s", 0.0, "s", "no transfers: links are free"),
            fixed("link_bandwidth_Bps", float("inf"), "B/s", "no transfers: links are free"),
        )
    b = t.nbytes.astype(np.float64)
    c_max = float(np.max(np.where(b > 0, t.duration / np.where(b > 0, b, 1.0), 0.0)))
    c = _search(t, c_max) if c_max > 0 else 0.0
    r = t.landed - _free(t, c)
    spread = MAD_TO_SIGMA * float(np.median(np.abs(r - max(float(np.median(r)), 0.0))))
    # Huber's scale from the residuals, floored: with most transfers fitted exactly the MAD is ~0,
    # and Huber at a scale of ~0 stalls the solver (below the floor, squares: exact data stay exact).
    scale = HUBER_K * max(spread, RESOLUTION * float(np.median(np.abs(t.duration))))
    best: tuple[float, LinkFit] | None = None
    seen: set[bytes] = set()
    for _ in range(POLISH_ROUNDS):
        starts = _starts(t, c)
        if starts.tobytes() in seen:  # the structure repeats: nothing new to fit
            break
        seen.add(starts.tobytes())
        fit = _regress(*_busy_period(t, starts), scale)
        c = _per_byte(fit.bandwidth.value)
        loss = _huber(t.landed - landings(t, fit.latency.value, fit.bandwidth.value), scale)
        if best is None or loss < best[0]:
            best = (loss, fit)
    assert best is not None
    return best[1]


def _huber(r: np.ndarray, scale: float) -> float:
    """Huber's loss of the misses `r` at `scale` (> 0)."""
    a = np.abs(r)
    return float(np.sum(np.where(a <= scale, 0.5 * a**2, scale * (a - 0.5 * scale))))


def _per_byte(bandwidth_Bps: float) -> float:
    return 0.0 if np.isinf(bandwidth_Bps) else 1.0 / bandwidth_Bps


def _free(t: Transfers, c: float) -> np.ndarray:
    """When each transfer frees its link at c seconds per byte: free_i = c · C_i + max_{j≤i} (ready_j - c · C_{j-1})
    within its link (C: the link's running byte count), the recursion unrolled."""
    out = np.empty(len(t))
    b = t.nbytes.astype(np.float64)
    for lo, hi in _segments(t.link):
        total = np.cumsum(b[lo:hi])
        out[lo:hi] = c * total + np.maximum.accumulate(t.ready[lo:hi] - c * (total - b[lo:hi]))
    return out


def _starts(t: Transfers, c: float) -> np.ndarray:
    """Per transfer, the index of the transfer that began its busy period at c seconds per byte."""
    free = _free(t, c)
    idle = np.ones(len(t), dtype=bool)
    idle[1:] = (t.ready[1:] >= free[:-1]) | (t.link[1:] != t.link[:-1])
    return np.maximum.accumulate(np.where(idle, np.arange(len(t)), 0))


def _busy_period(t: Transfers, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(land_i - ready_j, the link's bytes from j to i) with j = starts[i]: land_i = latency + c · x_i."""
    b = t.nbytes.astype(np.float64)
    total = np.cumsum(b)
    x = total - (total[starts] - b[starts])
    return t.landed - t.ready[starts], x


def _miss(t: Transfers, c: float) -> float:
    """Summed absolute miss of the landings at c, the latency at its best (median, ≥ 0)."""
    r = t.landed - _free(t, c)
    return float(np.sum(np.abs(r - max(float(np.median(r)), 0.0))))


def _search(t: Transfers, c_max: float) -> float:
    grid = np.concatenate([[0.0], np.geomspace(c_max * GRID_SPAN, c_max, GRID)])
    misses = np.array([_miss(t, float(c)) for c in grid])
    k = int(np.argmin(misses))
    lo, hi = float(grid[max(k - 1, 0)]), float(grid[min(k + 1, len(grid) - 1)])
    if hi <= lo:
        return float(grid[k])
    refined = minimize_scalar(
        lambda c: _miss(t, float(c)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-9 * hi}
    )
    return float(refined.x) if float(refined.fun) <= misses[k] else float(grid[k])


def _regress(y: np.ndarray, x: np.ndarray, scale: float) -> LinkFit:
    """Huber regression (at `scale`) y = latency + c · x (both ≥ 0) with standard errors; one x value: all latency."""
    if len(np.unique(x)) < 2:
        median = max(float(np.median(y)), 0.0)  # a latency ≥ 0 (clocks of two ranks may disagree)
        spread = MAD_TO_SIGMA * float(np.median(np.abs(y - median)))
        return LinkFit(
            Fitted(
                "link_latency_s",
                median,
                float(MEDIAN_EFFICIENCY * spread / np.sqrt(len(y))),
                "s",
                "one payload size: all latency",
            ),
            fixed("link_bandwidth_Bps", float("inf"), "B/s", f"one payload size ({int(x[0])} B): bandwidth not seen"),
        )
    # Scale bytes so both unknowns are of the order of the durations (better conditioned).
    xs = x / x.max()
    start = np.array([max(float(np.min(y)), 0.0), max(float(np.median(y)) - float(np.min(y)), 0.0)])
    fit = least_squares(
        lambda p: p[0] + p[1] * xs - y,
        start,
        bounds=(0, np.inf),
        loss="huber",
        f_scale=max(scale, 1e-12),
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    r = fit.fun
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))
    cov = np.linalg.pinv(fit.jac.T @ fit.jac) * sigma**2
    latency, slope = float(fit.x[0]), float(fit.x[1]) / float(x.max())  # seconds per byte
    slope_se = float(np.sqrt(max(cov[1, 1], 0.0))) / float(x.max())
    latency_fit = Fitted("link_latency_s", latency, float(np.sqrt(max(cov[0, 0], 0.0))), "s")
    if slope <= 0 or 1.0 / slope > MAX_BANDWIDTH_BPS:
        return LinkFit(latency_fit, fixed("link_bandwidth_Bps", float("inf"), "B/s", "no cost per byte seen"))
    bandwidth = 1.0 / slope
    return LinkFit(latency_fit, Fitted("link_bandwidth_Bps", bandwidth, bandwidth**2 * slope_se, "B/s"))


def _segments(link: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(link)) + 1
    bounds = [0, *edges.tolist(), len(link)]
    return list(pairwise(bounds))


def transfers(runs: list[tuple[str, TraceTable]]) -> Transfers:
    """Every datum's transfer for `fit_links`, per directed link in wire order (send start).

    The k-th `send` of a datum pairs with its k-th `recv` (a datum crosses its links in order);
    its link is (run, the send's device, the recv's device). A twin's transfer is ready at its send
    (which the twin starts when the link is free: a queue of none); a real one is ready when the op
    that produced it ended — its sender thread may wait for a core, and behind the link's earlier
    messages, before the send begins, and the twin's link must charge the former (the queue it
    reproduces itself). It lands at the recv's end (or, without recv rows, the send's).
    """
    links, ready, landed, nbytes, order = [], [], [], [], []
    compute = (KIND_CODES["fwd"], KIND_CODES["recompute"], KIND_CODES["bwd"])
    pairs: dict[tuple[int, int, int], int] = {}
    for r, (source, t) in enumerate(runs):
        sends = _by_sample(t, (t.kind == KIND_CODES["send"]) & (t.worker >= 0) & (t.device >= 0))
        recvs = _by_sample(t, (t.kind == KIND_CODES["recv"]) & (t.worker >= 0) & (t.device >= 0))
        producers = _by_sample(t, np.isin(t.kind, compute)) if source != "twin" else {}
        ends_by_sample: dict[int, list[tuple[float, int]]] = {}
        for (sample, _), i in producers.items():
            ends_by_sample.setdefault(sample, []).append((float(t.t_end[i]), int(t.device[i])))
        for (sample, k), i in sends.items():
            j = recvs.get((sample, k))
            start = float(t.t_start[i])
            before = [e for e, d in ends_by_sample.get(sample, ()) if d == t.device[i] and e <= start]
            link = (r, int(t.device[i]), int(t.device[j]) if j is not None else -1)
            links.append(pairs.setdefault(link, len(pairs)))
            ready.append(max(before) if before else start)
            landed.append(float(t.t_end[j]) if j is not None else float(t.t_end[i]))
            nbytes.append(int(t.bytes[i]))
            order.append(start)
    link_ids = np.asarray(links, dtype=np.int64)
    rows = np.lexsort((np.asarray(order, dtype=np.float64), link_ids))
    return Transfers(
        link_ids[rows],
        np.asarray(ready, dtype=np.float64)[rows],
        np.asarray(landed, dtype=np.float64)[rows],
        np.asarray(nbytes, dtype=np.int64)[rows],
    )


def _by_sample(t: TraceTable, mask: np.ndarray) -> dict[tuple[int, int], int]:
    rows = np.flatnonzero(mask)
    rows = rows[np.lexsort((t.t_start[rows], t.sample[rows]))]
    out: dict[tuple[int, int], int] = {}
    count: dict[int, int] = {}
    for i, sample in zip(rows.tolist(), t.sample[rows].tolist(), strict=True):
        k = count.get(sample, 0)
        count[sample] = k + 1
        out[(sample, k)] = i
    return out
