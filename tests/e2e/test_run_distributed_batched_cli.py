"""`ferret plan --strategy gpipe|1f1b --devices 2 && ferret run --plan … --mode distributed --nproc 2`
end to end (gloo, 127.0.0.1): a synchronous baseline runs in real time on two ranks, every datum
trained or dropped and said so, every gradient applied at staleness 0, one update per stage per
mini-batch; checkpoints with a batched strategy are refused in one line before any rank starts.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from analysis.cli import main
from tests.executor.distributed.harness import run_bounded

LIMIT = 240
FERRET = [sys.executable, "-m", "analysis"]
MINIBATCH = 4


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A roofline profile of mnistnet and its GPipe and 1F1B-flush plans on 2 devices."""
    folder = tmp_path_factory.mktemp("plans")
    profile = folder / "mnistnet.json"
    roofline = ["--model", "mnistnet", "--input-shape", "1,8,8", "--device", "roofline:titan-xp"]
    assert main(["profile", *roofline, "--out", str(profile)]) == 0
    made = {"profile": profile}
    for strategy in ("gpipe", "1f1b"):
        plan = made[strategy] = folder / f"{strategy}.json"
        args = ["--budget", "max", "--devices", "2", "--strategy", strategy, "--minibatch", str(MINIBATCH)]
        assert main(["plan", "--profile", str(profile), *args, "--out", str(plan)]) == 0
    return made


def run_args(made: dict[str, Path], strategy: str, samples: int) -> list[str]:
    return ["run", "--plan", str(made[strategy]), "--mode", "distributed", "--nproc", "2", "--dataset", "digits",
            "--profile", str(made["profile"]), "--samples", str(samples), "--arrival-interval", "5ms"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["gpipe", "1f1b"])
def test_a_synchronous_plan_runs_in_real_time_on_two_ranks(tmp_path, made, strategy):
    out = tmp_path / "run"
    done = run_bounded([*FERRET, *run_args(made, strategy, 90), "--out", str(out)], LIMIT)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "distributed" and summary["ranks"] == 2 and summary["strategy"] == strategy
    assert summary["trained"] + summary["dropped"] == 90 and summary["unpredicted"] == summary["dropped"]
    assert summary["trained"] > 0 and summary["sim_drop_rate"] is not None
    assert all(len(h) == 1 for h in summary["staleness_histogram"])  # synchronous: never stale
    rows = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert {r["device"] for r in rows if r["kind"] == "fwd"} == {0, 1}
    updates = [r for r in rows if r["kind"] == "update"]
    assert all(r["staleness"] == 0 and len(r["samples"]) <= MINIBATCH for r in updates)
    batches = -(-summary["trained"] // MINIBATCH)  # full batches (the buffer keeps one) and a last, shorter one
    assert summary["updates_per_stage"] == [batches] * len(summary["updates_per_stage"])
    applied = Counter((r["stage"], s) for r in updates for s in r["samples"])
    trained = {r["sample"] for r in rows if r["kind"] == "bwd"}
    assert set(applied.values()) == {1} and {s for _, s in applied} == trained  # each gradient once


def test_checkpoints_with_a_batched_strategy_are_one_line_before_any_rank(tmp_path, made, capsys):
    out = tmp_path / "run"
    assert main([*run_args(made, "gpipe", 20), "--checkpoint-every", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "strategy gpipe trains on mini-batches" in err, err
    assert not out.exists() and not list(tmp_path.iterdir())
