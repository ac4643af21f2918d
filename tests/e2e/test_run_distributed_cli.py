"""`ferret plan --devices 2 && ferret run --plan … --mode distributed --nproc 2` end to end (gloo,
127.0.0.1): it learns in real time and writes every output; a rank killed with SIGKILL after a
checkpoint takes the run down within 30 s with one line and leaves nothing that looks
complete, and the resumed run trains every datum exactly once (a later checkpoint links the
earlier record chunks); two torchrun "nodes" run the
same command; and every user error is one line before any rank starts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analysis.cli import main
from tests.e2e.roofline_plans import plan_of, roofline_profile
from tests.executor.distributed.harness import free_port, run_bounded, run_together

LIMIT = 240
FERRET = [sys.executable, "-m", "analysis"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A roofline profile of mnistnet and its Ferret M+ plan on 2 devices (stage owners)."""
    folder = tmp_path_factory.mktemp("plan")
    profile = roofline_profile(folder)
    return profile, plan_of(profile, folder / "plan.json", "--budget", "max", "--devices", "2")


def run_args(made: tuple[Path, Path], samples: int, interval: str) -> list[str]:
    profile, plan = made
    return ["run", "--plan", str(plan), "--mode", "distributed", "--dataset", "digits", "--profile", str(profile),
            "--samples", str(samples), "--arrival-interval", interval]  # fmt: skip


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the launcher's ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def kill_a_rank_after_the_first_checkpoint(checkpoints: Path, killed_at: list[float]) -> Callable[[Any], None]:
    """A `run_bounded` poke: SIGKILL the launcher's last rank once a checkpoint in `checkpoints`
    is complete (its time goes to `killed_at`); nothing if the run ends first."""

    def poke(process: Any) -> None:
        deadline = time.perf_counter() + LIMIT - 40
        while not list(checkpoints.glob("at-*/meta.json")) and process.poll() is None:
            if time.perf_counter() > deadline:
                return
            time.sleep(0.02)
        ranks = sorted(children(process.pid))
        killed_at.append(time.perf_counter())
        os.kill(ranks[-1], signal.SIGKILL)

    return poke


@pytest.mark.slow
def test_a_plan_learns_in_real_time_on_two_ranks(tmp_path, made):
    out = tmp_path / "run"
    done = run_bounded([*FERRET, *run_args(made, 200, "20ms"), "--nproc", "2", "--out", str(out)], LIMIT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote" in done.stdout and "distributed" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "distributed" and summary["ranks"] == 2
    assert summary["trained"] + summary["dropped"] == summary["samples"] == 200
    assert summary["unpredicted"] == summary["dropped"]
    assert summary["predicted_share"] == pytest.approx(1 - summary["drop_rate"])  # the twin's quantity too
    assert 0 <= summary["sim_predicted_share"] <= 1
    for field in ("drop_rate", "latency_p50_s", "latency_p99_s", "throughput_per_s", "sim_drop_rate"):
        assert summary[field] is not None, field
    assert summary["test_accuracy"] > 20.0  # 10 classes: learning, not chance
    assert sorted({p["rank"] for p in summary["per_rank"]}) == [0, 1]
    assert all(p["rss_peak_bytes"] > 0 and p["ledger_peak_bytes"] > 0 for p in summary["per_rank"])
    # Per thread role, CPU and run-queue seconds (Linux schedstat): the loop ran, the wire threads carried messages.
    assert all(p["threads"]["loop"]["cpu_s"] > 0 and p["threads"]["wire"]["cpu_s"] > 0 for p in summary["per_rank"])
    rows = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    kinds = Counter(r["kind"] for r in rows)
    assert kinds["arrive"] == 200 and kinds["send"] == kinds["recv"] > 0 and kinds["mem"] > 0
    assert {r["device"] for r in rows if r["kind"] == "fwd"} == {0, 1}
    assert [r["t_end"] for r in rows] == sorted(r["t_end"] for r in rows)
    chrome = json.loads((out / "chrome_trace.json").read_text())
    assert any(e.get("cat") == "fwd" for e in chrome["traceEvents"])
    assert not list(tmp_path.glob(".run.*"))  # no staging folder left behind


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_trains_every_datum_once(tmp_path, made):
    out = tmp_path / "run"
    checkpoints = tmp_path / "run.checkpoints"
    args = [*FERRET, *run_args(made, 90, "40ms"), "--nproc", "2", "--checkpoint-every", "30", "--out", str(out)]
    killed_at: list[float] = []
    first = run_bounded(args, LIMIT, poke=kill_a_rank_after_the_first_checkpoint(checkpoints, killed_at))
    assert first.returncode != 0 and killed_at, "the run ended before a rank could be killed"
    assert time.perf_counter() - killed_at[0] < 30
    lines = first.stderr.strip().splitlines()
    assert "killed by SIGKILL" in lines[-1] and lines[-1].startswith("ferret run: error: rank "), first.stderr[-2000:]
    # The survivor's own line ("lost rank 1") goes to the launcher, which says one line only.
    assert [line for line in lines if "ferret run" in line] == lines[-1:], first.stderr[-2000:]
    assert not (out / "summary.json").exists()  # nothing that looks complete
    # The staging folder and the output lock stay (the ranks end with os._exit); the next write clears them.
    assert all(p.name.endswith((".partial", ".lock")) for p in tmp_path.glob(".run.*")), list(tmp_path.iterdir())

    resumed = run_bounded([*args, "--resume", str(checkpoints)], LIMIT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list(tmp_path.glob(".run.*.partial"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained"] + summary["dropped"] == 90
    rows = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert sorted(r["sample"] for r in rows if r["kind"] == "arrive") == list(range(90))
    applied = Counter((r["stage"], s) for r in rows if r["kind"] == "update" for s in r["samples"])
    assert max(applied.values()) == 1  # no gradient applied twice, across the cut
    updated = {s for (_, s) in applied}
    trained = {r["sample"] for r in rows if r["kind"] == "bwd"}
    assert updated == trained and len(trained) == summary["trained"]  # none lost either
    # At 60 (taken before the kill or by the resumed run), each rank's record up to 30 is the
    # first checkpoint's chunk itself (a hard link), not written again.
    first, second = sorted(checkpoints.glob("at-*"))
    for rank in (0, 1):
        chunk = f"rank{rank}-record-000000030.pkl"
        assert (second / chunk).stat().st_ino == (first / chunk).stat().st_ino
        assert (second / f"rank{rank}-record-000000060.pkl").is_file()


@pytest.mark.slow
def test_two_torchrun_nodes_on_loopback_run_the_same_command(tmp_path, made):
    out = tmp_path / "run"
    node = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", uuid.uuid4().hex[:8],
        "--local-addr", "127.0.0.1", "--max-restarts", "0",
        "-m", "analysis", *run_args(made, 100, "20ms"), "--out", str(out),
    ]  # fmt: skip
    for done in run_together([node, node], LIMIT):
        assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["trained"] + summary["dropped"] == 100
    assert summary["trained"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--nproc D"),
        (["--nproc", "3"], "run it with --nproc 2"),
        (["--nproc", "2", "--streams", "2"], "needs CUDA"),
        (["--nproc", "2", "--follow-trace", "t.jsonl", "--checkpoint-every", "5"], "does not combine with checkpoints"),
        (["--nproc", "2", "--algorithm", "alsar"], "a datum's training forward holds no prediction of it"),
    ],
)
def test_distributed_user_errors_are_one_line_before_any_rank(tmp_path, made, capsys, extra, message):
    out = tmp_path / "run"
    assert main([*run_args(made, 20, "20ms"), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_distributed_flags_need_the_distributed_mode(tmp_path, made, capsys):
    profile, plan = made
    args = ["run", "--plan", str(plan), "--mode", "replay", "--nproc", "2", "--profile", str(profile)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert "--nproc applies to --mode distributed only" in capsys.readouterr().err


def test_a_plan_that_splits_a_stage_is_refused(tmp_path, made, capsys):
    profile, plan = made
    split = json.loads(plan.read_text())
    split["placement"] = [[w, w, w, w] for w in range(len(split["placement"]))]  # stage j on every worker's device
    path = tmp_path / "split.json"
    path.write_text(json.dumps(split))
    args = ["run", "--plan", str(path), "--mode", "distributed", "--nproc", "2", "--profile", str(profile)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert "ferret plan --devices D" in capsys.readouterr().err
