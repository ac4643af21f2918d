"""`ferret plan --strategy gpipe|1f1b --devices 2 && ferret run --plan … --mode distributed --nproc 2`
end to end (gloo, 127.0.0.1): a synchronous baseline runs in real time on two ranks, every datum
trained or dropped and said so, every gradient applied at staleness 0, one update per stage per
mini-batch; a rank SIGKILLed after a checkpoint, and the run resumed: every datum trained or dropped
once, the data that waited for a mini-batch at the checkpoint trained in the next one.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.roofline_plans import plan_of, roofline_profile
from tests.e2e.test_run_distributed_cli import kill_a_rank_after_the_first_checkpoint
from tests.executor.distributed.harness import run_bounded

LIMIT = 240
FERRET = [sys.executable, "-m", "analysis"]
MINIBATCH = 4


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A roofline profile of mnistnet and its GPipe and 1F1B-flush plans on 2 devices."""
    folder = tmp_path_factory.mktemp("plans")
    profile = roofline_profile(folder)
    made = {"profile": profile}
    for strategy in ("gpipe", "1f1b"):
        args = ["--budget", "max", "--devices", "2", "--strategy", strategy, "--minibatch", str(MINIBATCH)]
        made[strategy] = plan_of(profile, folder / f"{strategy}.json", *args)
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


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_keeps_the_waiting_batch(tmp_path, made):
    # A checkpoint every 30 data with mini-batches of 4: it is taken between batches, with data
    # 28 and 29 waiting for theirs (when nothing was dropped before) — the checkpoint keeps them.
    out = tmp_path / "run"
    checkpoints = tmp_path / "run.checkpoints"
    args = [*FERRET, *run_args(made, "gpipe", 90), "--arrival-interval", "40ms", "--checkpoint-every", "30"]
    args += ["--out", str(out)]
    killed_at: list[float] = []
    first = run_bounded(args, LIMIT, poke=kill_a_rank_after_the_first_checkpoint(checkpoints, killed_at))
    assert first.returncode != 0 and killed_at, "the run ended before a rank could be killed"
    assert not (out / "summary.json").exists()
    resumed = run_bounded([*args, "--resume", str(checkpoints)], LIMIT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained"] + summary["dropped"] == 90
    assert all(len(h) == 1 for h in summary["staleness_histogram"])
    rows = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    updates = [r for r in rows if r["kind"] == "update"]
    applied = Counter((r["stage"], s) for r in updates for s in r["samples"])
    trained = {r["sample"] for r in rows if r["kind"] == "bwd"}
    assert set(applied.values()) == {1} and {s for _, s in applied} == trained  # once each, across the cut
    assert len(trained) == summary["trained"]
    batches = [r["samples"] for r in updates if r["stage"] == 0]
    assert all(len(b) == MINIBATCH for b in batches[:-1])  # the waiting data joined the next batch
    if summary["dropped"] == 0:
        assert [28, 29, 30, 31] in batches
