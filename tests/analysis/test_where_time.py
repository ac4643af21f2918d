"""analysis/where_time.py: a datum's life split into parts that add up to its latency, exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.cli import main
from analysis.trace_table import TraceTable
from analysis.where_time import PARTS, split_time
from sim.trace import TraceRow

REPO = Path(__file__).resolve().parents[2]


def row(kind: str, sample: int, stage: int, device: int, start: float, end: float, worker: int = 0) -> TraceRow:
    return TraceRow(kind, sample, worker, stage, device, start, end)


def two_ranks(gaps: list[float], durations: list[float], other: tuple[float, float] | None = None) -> list[TraceRow]:
    """One datum through P = 2 stages on ranks 0 and 1: `gaps[i]` before each step, `durations` of its 4 ops
    and 4 wire spans (send, then the recv's end after the send's start), optionally another datum's op on rank 1."""
    t = 0.0
    rows = [row("arrive", 0, -1, -1, 0.0, 0.0)]

    def step(kind: str, stage: int, device: int, gap: float, length: float) -> tuple[float, float]:
        nonlocal t
        start, end = t + gap, t + gap + length
        rows.append(row(kind, 0, stage, device, start, end))
        t = end
        return start, end

    g, d = iter(gaps), iter(durations)
    step("fwd", 0, 0, next(g), next(d))
    send = step("send", 0, 0, next(g), next(d))
    t = send[0]
    step("recv", 1, 1, 0.0, next(d))
    step("fwd", 1, 1, next(g), next(d))
    step("bwd", 1, 1, next(g), next(d))
    send = step("send", 1, 1, next(g), next(d))
    t = send[0]
    step("recv", 0, 0, 0.0, next(d))
    step("bwd", 0, 0, next(g), next(d))
    if other is not None:
        rows.append(row("fwd", 1, 1, 1, *other, worker=1))
    return sorted(rows, key=lambda r: r.t_end)


def test_each_part_of_a_known_datum() -> None:
    # fwd0 [1, 2]; send [2.5, 3]; recv ends 3.5; another datum's op on rank 1 [3.6, 3.8]; fwd1 [4, 5];
    # bwd1 [5, 6]; send [6.5, 7]; recv ends 8; bwd0 [9, 10]; a drop of the same worker at 5.
    rows = two_ranks([1, 0.5, 0.5, 0, 0.5, 1], [1, 0.5, 1.0, 1, 1, 0.5, 1.5, 1], other=(3.6, 3.8))
    rows.append(row("drop", 2, -1, -1, 5.0, 5.0))
    split = split_time(TraceTable.from_rows(rows), 2, idle_s={0: 4.0})
    assert split.trained == 1 and split.dropped == 1
    assert split.latency_s == pytest.approx(10.0)
    expected = {"admission_behind": 0.0, "admission_outside": 1.0, "own_ops": 4.0, "behind_ops": 0.2,
                "outside_ops": 1.3, "to_wire": 1.0, "wire": 2.5}  # fmt: skip
    assert split.parts_s == pytest.approx(expected)
    assert split.held_at_drop == 1.0  # datum 0 was in flight at t = 5
    by_rank = {r.device: r for r in split.ranks}
    assert by_rank[0].ops_s == pytest.approx(2.0) and by_rank[0].span_s == pytest.approx(9.0)
    assert by_rank[0].sending_s == pytest.approx(0.5) and by_rank[0].idle_s == 4.0
    assert by_rank[1].ops_s == pytest.approx(2.2) and by_rank[1].idle_s is None


positive = st.floats(0.0, 5.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(positive, min_size=6, max_size=6), st.lists(st.floats(0.01, 5.0), min_size=8, max_size=8))
def test_parts_add_up_to_the_latency(gaps: list[float], durations: list[float]) -> None:
    split = split_time(TraceTable.from_rows(two_ranks(gaps, durations)), 2)
    assert set(split.parts_s) == set(PARTS)
    assert all(v >= -1e-9 for v in split.parts_s.values())
    assert sum(split.parts_s.values()) == pytest.approx(split.latency_s)
    assert split.parts_s["own_ops"] == pytest.approx(durations[0] + durations[3] + durations[4] + durations[7])


def test_an_untrained_datum_is_not_split() -> None:
    rows = [row("arrive", 0, -1, -1, 0.0, 0.0), row("fwd", 0, 0, 0, 0.1, 0.2)]  # never got its backward
    split = split_time(TraceTable.from_rows(rows), 2)
    assert split.trained == 0 and split.latency_s == 0.0


def test_cli_on_a_simulated_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ferret = [sys.executable, "-m", "analysis"]
    profile, plan, run = tmp_path / "p.json", tmp_path / "plan.json", tmp_path / "sim"
    subprocess.run([*ferret, "profile", "--model", "mnistnet", "--input-shape", "1,8,8", "--out", str(profile)],
                   cwd=REPO, check=True, capture_output=True)  # fmt: skip
    subprocess.run([*ferret, "plan", "--profile", str(profile), "--budget", "max", "--devices", "2", "--out", str(plan)],
                   cwd=REPO, check=True, capture_output=True)  # fmt: skip
    subprocess.run([*ferret, "simulate", "--plan", str(plan), "--profile", str(profile), "--samples", "60",
                    "--trace-format", "jsonl", "--out", str(run)], cwd=REPO, check=True, capture_output=True)  # fmt: skip
    assert main(["breakdown", str(run)]) == 0
    assert "| rank | op | stage |" in capsys.readouterr().out
    assert main(["breakdown", str(run), "--json"]) == 0
    split = json.loads(capsys.readouterr().out)
    assert split["trained"] > 0 and split["trained"] + split["dropped"] == 60  # the plan's own interval drops some
    assert sum(split["parts_s"].values()) == pytest.approx(split["latency_s"])
    assert split["held_at_drop"] == 4.0 == split["window"]  # the twin drops only when a worker's window is full


def test_cli_bad_folder_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["breakdown", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ferret breakdown: error:")
