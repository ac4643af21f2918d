"""Rank 0 merges every rank's report into one `RunResult` and one measured trace.

Per datum: its prediction (the logits of its own training forward at the last stage, or of an
inference forward under `--predict-all`; `-1` when none was made), the lowest stage its
backward reached, and per stage the run time of the first update that applied its gradient —
the replay's records (records.py), so `trained_at_s`, delays and the adaptation rates mean the
same in both executors. The final weights of every stage are installed in rank 0's model and
the test set is evaluated once, at the end (no rank holds the whole model during the run).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from executor.compensation import compensation_efficacy
from executor.distributed.report import RankReport, update_times
from executor.distributed.trace import Row, as_trace_row, merge_rows
from executor.models.base import LayeredModel
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from executor.pipeline.summary import PipelineSummary
from executor.replay.records import ModelView, ReplayRecords
from sim.result import stream_horizon, stream_latencies, stream_throughput
from sim.trace import FileTrace

if TYPE_CHECKING:
    from executor.distributed.rank import RankRun


def merge_reports(
    setup: RunSetup, run: RankRun, model: LayeredModel, reports: Sequence[RankReport], owners: Sequence[int]
) -> RunResult:
    plan = run.plan
    P = plan.num_stages
    stream = setup.stream
    n = len(stream)
    source = next(r.source for r in reports if r.source)
    records = ReplayRecords(stream, P, 0, setup.torch_device)
    records.bottom[:] = np.asarray(source["bottom"], dtype=np.int64)
    records.update_s[:] = update_times(list(reports), n, P)
    for report in reports:
        for sample, label in report.predicted.items():
            records.predicted[sample] = label
        for stage, hist in report.staleness.items():
            records.staleness[stage] = list(hist)
    _install_weights(model, reports)
    records.evaluate(ModelView(model), n)
    arrival = np.asarray(stream.arrival_s, dtype=np.float64)
    trained = np.isfinite(records.trained_at())
    dropped = np.asarray(source["dropped"], dtype=bool)
    predicted = records.predicted >= 0
    latencies = stream_latencies(records.update_s, arrival)
    updates = [0] * P
    for report in reports:
        for stage, *_ in report.updates:
            updates[stage] += 1
    lambdas: dict[int, float | None] = {j: lam for r in reports for j, lam in r.final_lambda.items()}
    efficacy = {j: log for r in reports for j, log in r.efficacy.items()}
    measured: dict[str, Any] = {
        "ranks": len(reports),
        "stage_owners": list(owners),
        "schedule": "real time" if run.rows is None else str(run.options.follow_trace),
        "predict_all": run.options.predict_all,
        "dropped_removed_worker": int(np.sum(source["removed"])),
        "drop_rate": float(dropped.mean()),
        "unpredicted": int((~predicted).sum()),
        "predicted_share": float(predicted.mean()),
        "unpredicted_note": (
            "a datum is predicted by its own training forward at the last stage; data no worker trained on "
            "(dropped, or of removed workers) are unpredicted unless --predict-all"
        ),
        "in_flight_at_end": int(n - trained.sum() - dropped.sum()),
        # The twin's definitions (sim/result.py), on the measured update times.
        "latency_p50_s": float(np.quantile(latencies, 0.5)) if len(latencies) else None,
        "latency_p99_s": float(np.quantile(latencies, 0.99)) if len(latencies) else None,
        "throughput_per_s": stream_throughput(records.update_s, stream_horizon(arrival, plan.arrival_interval_s)),
        "executor_overhead_us_per_op": _overhead_us(reports),
        "executor_overhead_cpu_us_per_op": _overhead_cpu_us(reports),
        "nonfinite_updates_skipped": sum(r.nonfinite_skipped for r in reports),
        **(
            {"trace_updates_skipped_per_stage": _per_stage(P, [r.trace_updates_skipped for r in reports])}
            if run.rows is not None
            else {}
        ),
        "per_rank": [_rank_summary(r) for r in reports],
    }
    summary = PipelineSummary.from_records(
        records,
        setup.profile,
        plan,
        int(dropped.sum()),
        ops_executed=sum(r.ops for r in reports),
        updates_per_stage=updates,
        frozen_backwards_per_stage=_per_stage(P, [r.frozen_backwards for r in reports]),
        final_lambda=[lambdas.get(j) for j in range(P)],
        compensated_stages=sorted(j for r in reports for j in r.compensated),
        compensation_efficacy=compensation_efficacy([efficacy[j] for j in range(P)], n),
        measured_peak_memory_layer_outputs_bytes=sum(r.ledger_peak for r in reports),
        measured_weights_activations_peak_bytes=sum(r.f4_peak for r in reports),
        measured=measured,
    )
    return records.result(
        plan.strategy,
        setup.algorithm.name,
        steps=updates[-1],
        train_flops=sum(r.flops for r in reports),
        busy_s=sum(r.busy_s for r in reports),
        peak_memory_bytes=sum(r.saved_peak for r in reports),
        peak_memory_by_category=_sum_peaks(reports),
        cuda_peak_memory_bytes=_sum_optional([r.cuda_peak_bytes for r in reports]),
        wall_s=max(r.wall_s for r in reports),
        details={**summary.details(), **{k: v for r in reports for k, v in r.algorithm.items()}},
    )


def write_trace(path: Path, per_rank: Sequence[list[Row]]) -> None:
    """The merged measured trace (JSON Lines, or CSV for a .csv path), ordered by end time."""
    sink = FileTrace(path, "csv" if path.suffix.lower() == ".csv" else "jsonl")
    try:
        for row in merge_rows(per_rank):
            sink.add(as_trace_row(row))
            sink.maybe_flush()
    finally:
        sink.close()


def _install_weights(model: LayeredModel, reports: Sequence[RankReport]) -> None:
    weights = {name: w for r in reports for name, w in r.weights.items()}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in weights:
                param.copy_(weights[name].to(param.device))


def _rank_summary(r: RankReport) -> dict[str, Any]:
    return {
        "rank": r.rank,
        "stages": list(r.stages),
        "ops": r.ops,
        "busy_s": r.busy_s,
        "wall_s": r.wall_s,
        "idle_s": r.idle_s,
        "overhead_us_per_op": _overhead_us([r]),
        "overhead_cpu_us_per_op": _overhead_cpu_us([r]),
        "ledger_peak_bytes": r.saved_peak,
        "ledger_peak_layer_outputs_bytes": r.ledger_peak,
        "rss_peak_bytes": r.rss_peak_bytes,
        "cuda_peak_bytes": r.cuda_peak_bytes,
        "wire_bytes_sent": r.wire_bytes_sent,
        "clock": r.clock,
        "ready_s": r.ready_s,
        "start_late_s": r.start_late_s,
        "threads": r.threads,
    }


def _overhead_us(reports: Sequence[RankReport]) -> float | None:
    """What the run loops spent beyond the ops' compute, their idle waits and the compensation
    efficacy measured inside backwards, per op: message handling, scheduling, admission,
    routing, records (the wire itself runs on other threads)."""
    ops = sum(r.ops for r in reports)
    if not ops:
        return None
    return 1e6 * sum(r.wall_s - r.idle_s - r.busy_s - _measuring(r)[0] for r in reports) / ops


def _overhead_cpu_us(reports: Sequence[RankReport]) -> float | None:
    """The same in the loop thread's CPU time: what a loaded machine's descheduling cannot inflate."""
    ops = sum(r.ops for r in reports)
    if not ops:
        return None
    return 1e6 * sum(r.loop_cpu_s - r.ops_cpu_s - _measuring(r)[1] for r in reports) / ops


def _measuring(report: RankReport) -> tuple[float, float]:
    """Wall and CPU time the rank's stages spent measuring compensation efficacy."""
    logs = report.efficacy.values()
    return sum(log.seconds for log in logs), sum(log.cpu_seconds for log in logs)


def _per_stage(num_stages: int, per_rank: Sequence[dict[int, int]]) -> list[int]:
    out = [0] * num_stages
    for counts in per_rank:
        for stage, count in counts.items():
            out[stage] += count
    return out


def _sum_peaks(reports: Sequence[RankReport]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reports:
        for category, nbytes in r.peak_by_category.items():
            out[category] = out.get(category, 0) + nbytes
    return out


def _sum_optional(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
