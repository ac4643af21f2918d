"""Link latency and bandwidth: a robust regression of each transfer's time on its bytes.

The twin's link (sim/links.py) holds a transfer for `bytes / bandwidth` and lands it `latency`
later, so a transfer takes `latency + bytes / bandwidth` from its send to its arrival: the
intercept and the slope of a line (`fit.py` measures it from a send's start to its recv's end).
The fit is Huber (scipy `least_squares`), both terms ≥ 0. With one payload size only the sum is
seen: the latency takes it all and the bandwidth stays free (∞). Without send rows the links
are free, as in the twin's default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from analysis.calibrate.params import MAD_TO_SIGMA, MEDIAN_EFFICIENCY, Fitted, fixed
from analysis.trace_table import KIND_CODES, TraceTable


@dataclass(frozen=True)
class LinkFit:
    """The twin's link model fitted to the transfers: `latency` (s) and `bandwidth` (bytes/s).

    No transfers: latency 0 and bandwidth inf, both marked not fitted (free links).
    """

    latency: Fitted
    bandwidth: Fitted  # bytes per second; inf = free


def fit_links(duration: np.ndarray, nbytes: np.ndarray) -> LinkFit:
    if len(duration) == 0:
        return LinkFit(
            fixed("link_latency_s", 0.0, "s", "no transfers: links are free"),
            fixed("link_bandwidth_Bps", float("inf"), "B/s", "no transfers: links are free"),
        )
    x = nbytes.astype(np.float64)
    if len(np.unique(x)) < 2:
        median = float(np.median(duration))
        spread = MAD_TO_SIGMA * float(np.median(np.abs(duration - median)))
        return LinkFit(
            Fitted(
                "link_latency_s",
                median,
                float(MEDIAN_EFFICIENCY * spread / np.sqrt(len(duration))),
                "s",
                "one payload size: all latency",
            ),
            fixed("link_bandwidth_Bps", float("inf"), "B/s", f"one payload size ({int(x[0])} B): bandwidth not seen"),
        )
    # Scale bytes so both unknowns are of the order of the durations (better conditioned).
    xs = x / x.max()
    y = duration
    start = np.array([max(float(np.min(y)), 0.0), max(float(np.median(y)) - float(np.min(y)), 0.0)])
    spread = MAD_TO_SIGMA * float(np.median(np.abs(y - np.median(y))))
    fit = least_squares(
        lambda p: p[0] + p[1] * xs - y,
        start,
        bounds=(0, np.inf),
        loss="huber",
        f_scale=max(1.345 * spread, 1e-12),
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
    if slope <= 0:
        return LinkFit(latency_fit, fixed("link_bandwidth_Bps", float("inf"), "B/s", "no cost per byte seen"))
    bandwidth = 1.0 / slope
    return LinkFit(latency_fit, Fitted("link_bandwidth_Bps", bandwidth, bandwidth**2 * slope_se, "B/s"))


def transfers(runs: list[tuple[str, TraceTable]]) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, bytes) of every datum's transfer, for `links.fit_links`.

    The k-th `send` of a datum pairs with its k-th `recv` (a datum crosses its links in order).
    A twin's transfer starts at its send (a link still busy with an earlier one delays the send,
    which the twin reproduces by itself); a real one starts when the op that produced it ended —
    its sender thread may wait for a core before the send begins, and the twin's link must
    charge that too. It ends at the recv's end (or, without recv rows, the send's).
    """
    durations, nbytes = [], []
    compute = (KIND_CODES["fwd"], KIND_CODES["recompute"], KIND_CODES["bwd"])
    for source, t in runs:
        sends = _by_sample(t, (t.kind == KIND_CODES["send"]) & (t.worker >= 0) & (t.device >= 0))
        recvs = _by_sample(t, (t.kind == KIND_CODES["recv"]) & (t.worker >= 0) & (t.device >= 0))
        producers = _by_sample(t, np.isin(t.kind, compute)) if source != "twin" else {}
        ends_by_sample: dict[int, list[tuple[float, int]]] = {}
        for (sample, _), i in producers.items():
            ends_by_sample.setdefault(sample, []).append((float(t.t_end[i]), int(t.device[i])))
        for (sample, k), i in sends.items():
            j = recvs.get((sample, k))
            end = float(t.t_end[j]) if j is not None else float(t.t_end[i])
            start = float(t.t_start[i])
            before = [e for e, d in ends_by_sample.get(sample, ()) if d == t.device[i] and e <= start]
            durations.append(end - (max(before) if before else start))
            nbytes.append(int(t.bytes[i]))
    return np.asarray(durations, dtype=np.float64), np.asarray(nbytes, dtype=np.int64)


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
