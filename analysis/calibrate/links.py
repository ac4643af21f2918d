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

from analysis.calibrate.params import Fitted, fixed

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class LinkFit:
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
                float(1.2533 * spread / np.sqrt(len(duration))),
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
