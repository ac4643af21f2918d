"""What a pipeline run measured beyond a sequential run: one dataclass both executors fill.

The replay executor (`ReplayExecutor._result`) and the distributed one (`merge.py`) each make a
`PipelineSummary`; its fields land in `summary.json` beside the sequential frameworks' own
(`executor.metrics.summarize`), with what every mode reports about its plan and the twin
(`plan_report`, `twin_summary` in executor/ocl/frameworks/pipeline.py). Fields one executor
alone can measure go in `measured` (the replay's wall time per op; the distributed run's drops,
latency, throughput, ranks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from planner.closed_form import stage_shares
from planner.plan import Plan
from planner.profile import ModelProfile

if TYPE_CHECKING:
    from executor.replay.records import ReplayRecords


@dataclass
class PipelineSummary:
    ops_executed: int
    updates_per_stage: list[int]
    staleness_histogram: list[list[int]]  # per stage: gradients applied by staleness
    mean_staleness: float | None
    final_lambda: list[float | None]  # Iter-Fisher/Fisher λ per stage (None: no such compensator)
    compensated_stages: list[int]
    dropped: int
    partially_trained: int  # trained down to a stage above 0 (omission, or a frozen prefix)
    frozen_backwards_per_stage: list[int]  # backwards a frozen prefix (aL-SAR) reduced to a release
    stagewise_adaptation_rate: float  # SPEC §2's measured R
    measured_peak_memory_layer_outputs_bytes: int  # the ledger in F4's convention
    measured_weights_activations_peak_bytes: int  # the part F4 predicts
    measured: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_records(
        cls, records: ReplayRecords, profile: ModelProfile, plan: Plan, dropped: int, **fields: Any
    ) -> PipelineSummary:
        """The fields both executors compute the same way from the per-datum records."""
        shares = stage_shares(profile, plan.partition)
        return cls(
            **records.staleness_summary(),  # type: ignore[arg-type]
            dropped=dropped,
            partially_trained=int((records.bottom > 0).sum()),
            stagewise_adaptation_rate=records.stagewise_rate(shares, plan.decay_per_s, plan.arrival_interval_s),
            **fields,
        )

    def details(self) -> dict[str, Any]:
        out = asdict(self)
        measured = out.pop("measured")
        return {**out, **measured}
