"""The most work one command may start: `WorkLimits`, one `--max-…` flag each.

The `ferret` CLI sets the limits of its process from the flags (every command has them); a
library entry point estimates its work before starting it (the planner's worker count, the
what-if points, the simulated or replayed ops, the bytes of a data set or model) and
`check_work` refuses with one line that names the limit and the flag that raises it. Scripts
and tests change them with `raised_limits`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

from planner.config_field import config_field, field_specs
from planner.errors import ValidationError
from planner.profile import ModelProfile


@dataclass(frozen=True)
class WorkLimits:
    """The most work one command may start (each a `--max-…` flag of every command)."""

    max_workers: int = config_field(
        1024, help="most pipeline workers the planner may consider (⌈step time / arrival interval⌉)", unit="int", ge=1
    )
    max_points: int = config_field(
        2000, help="most what-if points (budgets × strategies × intervals)", unit="int", ge=1
    )
    max_events: int = config_field(
        5 * 10**7, help="most ops simulated or replayed (≈ samples × ops per datum, over all points)", unit="int", ge=1
    )
    max_memory_bytes: int = config_field(
        4 * 2**30,
        help="most bytes one data set, model or activation may take when built",
        unit="bytes",
        ge=1,
        flag="max-memory",
        default_text="4GiB",
    )

    def flag(self, name: str) -> str:
        return next("--" + spec.flag_for(f.name) for f, spec in field_specs(WorkLimits) if f.name == name)


_current = WorkLimits()


def limits() -> WorkLimits:
    """The limits in force in this process (the CLI sets them from its flags)."""
    return _current


def set_limits(new: WorkLimits) -> None:
    global _current
    _current = new


@contextlib.contextmanager
def raised_limits(**changes: int) -> Iterator[WorkLimits]:
    """Run a block with some limits changed (tests, scripts)."""
    previous = _current
    set_limits(dataclasses.replace(previous, **changes))
    try:
        yield _current
    finally:
        set_limits(previous)


def check_work(name: str, amount: float, what: str, unit: str = "") -> None:
    """Refuse `what` when it needs more than the limit `name` allows, naming the flag."""
    limit = getattr(_current, name)
    if not amount <= limit:  # NaN or inf refuse too
        if name == "max_memory_bytes":
            shown, allowed = f"{amount / 2**30:.3g} GiB", f"{limit / 2**30:.3g} GiB"
        else:
            words = f" {unit}" if unit else ""
            shown = (f"{amount:,.0f}" if math.isfinite(amount) and amount < 1e18 else f"{amount:.3g}") + words
            allowed = f"{limit:,}{words}"
        raise ValidationError(f"{what} needs {shown}, above the limit of {allowed} ({_current.flag(name)} raises it)")


def check_plannable(profile: ModelProfile, arrival_interval_s: float) -> None:
    """Refuse to plan when the candidates would need too many workers (⌈cycle / td⌉ for the
    slowest candidate, one recomputed stage), or when their (F4) memory could pass 2**62 bytes."""
    cycle = 2 * math.fsum(profile.t_fwd) + math.fsum(profile.t_bwd)
    ratio = cycle / arrival_interval_s if arrival_interval_s > 0 else math.inf
    workers = math.ceil(ratio) if math.isfinite(ratio) else math.inf
    check_work("max_workers", workers, f"planning for an arrival every {arrival_interval_s:.3g} s", "workers")
    worst = workers * (profile.num_layers + 1) * sum(x.param_bytes + x.act_bytes for x in profile.layers)
    if worst > 2**62:
        raise ValidationError(
            f"planning for an arrival every {arrival_interval_s:.3g} s: {workers} workers storing this profile's "
            "bytes could need more than 2**62 bytes, past what ferret counts exactly; give a longer interval"
        )
