"""A `Calibration` written out: `calibration.json` (every parameter with its uncertainty) and
`calibration.md` (the same as tables a person reads)."""

from __future__ import annotations

import math
from typing import Any

from analysis.calibrate.fit import Calibration
from analysis.calibrate.params import Fitted
from analysis.units import format_seconds
from planner.profile import ModelProfile


def to_json(c: Calibration, plain: ModelProfile) -> dict[str, Any]:
    layers = []
    for k, layer in enumerate(plain.layers):
        layers.append(
            {
                "name": layer.name,
                "profile_t_fwd_s": layer.t_fwd_s,
                "profile_t_bwd_s": layer.t_bwd_s,
                "t_fwd": c.layers.t_fwd[k].to_json(),
                "t_bwd": c.layers.t_bwd[k].to_json(),
                "t_rec": c.layers.t_rec[k].to_json(),
            }
        )
    return {
        "runs": list(c.runs),
        "host_cores": c.host_cores,
        "parameters": [p.to_json() for p in c.parameters],
        "layers": layers,
        "groups": [g.__dict__ for g in c.groups],
        "sim_config": c.sim_config.to_json(),
    }


def _value(p: Fitted) -> str:
    if not math.isfinite(p.value):
        return "∞ (free)"
    if p.unit == "s":
        return format_seconds(p.value)
    if p.unit == "B/s":
        return f"{p.value / 2**20:.4g} MiB/s"
    return f"{p.value:.4g}"


def _err(p: Fitted) -> str:
    if p.stderr is None or not math.isfinite(p.stderr):
        return "–"
    if p.unit == "s":
        return f"± {format_seconds(p.stderr)}"
    if p.unit == "B/s":
        return f"± {p.stderr / 2**20:.3g} MiB/s"
    return f"± {p.stderr:.2g}"


def to_markdown(c: Calibration, plain: ModelProfile) -> str:
    lines = [
        "# Calibration",
        "",
        f"Fitted from {len(c.runs)} measured run(s): " + ", ".join(f"`{r}`" for r in c.runs) + ".",
        "Uncertainties are one standard error. A value that was not fitted says why.",
        "",
        "## Timing model (`sim_config.json`)",
        "",
        "| parameter | value | uncertainty | how |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {p.name} | {_value(p)} | {_err(p)} | {p.how} |" for p in c.parameters]
    lines += [
        "",
        "## Layers (`profile.json`, source `calibrated`)",
        "",
        "| layer | profiled fwd | fitted fwd | profiled bwd | fitted bwd | fitted recompute | how |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, layer in enumerate(plain.layers):
        f, b, r = c.layers.t_fwd[k], c.layers.t_bwd[k], c.layers.t_rec[k]
        lines.append(
            f"| {layer.name} | {format_seconds(layer.t_fwd_s)} | {_value(f)} {_err(f)} | {format_seconds(layer.t_bwd_s)} "
            f"| {_value(b)} {_err(b)} | {_value(r)} | {f.how} |"
        )
    lines += [
        "",
        "## Groups: each stage's uncontended op time and how well the layer model reproduces it",
        "",
        "| run | row type | stage | rows | base | layer model error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for g in c.groups:
        err = "–" if not math.isfinite(g.residual) else f"{100 * g.residual:+.2f} %"
        lines.append(f"| {g.run} | {g.row_type} | {g.stage} | {g.rows} | {format_seconds(g.base_s)} | {err} |")
    return "\n".join(lines) + "\n"
