"""The distributed executor on real ranks (gloo, 127.0.0.1), against the replay executor.

* Lockstep (`--follow-trace`): every rank runs its stages' ops in the twin's order and the
  final weights are bit-identical to the replay's on the same trace — P = 3, N ≥ 2, each of
  T1 (recompute), T2 (accumulation), T3 (omission, with ER), T4 (a removed worker), and
  PipeDream-2BW; on 2 ranks (stages 0 | 1, 2) and 3 ranks (one stage each; T3 and 2BW).
* Real time, P = 2 on 2 ranks and P = 3 on 3: every datum is trained or dropped, and every
  trained datum (only those) was predicted — every datum, with `--predict-all` (P = 3); the measured trace, replayed in one process by
  the replay executor — which checks every version, staleness and update against it — ends
  with the distributed run's weights, bit for bit. One rank owning every stage (no launcher, the
  in-process transport) runs MIR, which needs the whole model, under the same checks.
* LwF, MAS and MIR across ranks, on 2 ranks (stages 0 | 1, 2) and on 3 (P = 3 one stage each:
  every pass and LwF's teacher activation relayed by the middle rank; P = 4 on 0 | 1 | 2, 3):
  lockstep gives the replay's weights bit for bit (and they differ from vanilla's / ER's); real
  time keeps the books above, its measured trace passes the replay's version and staleness
  checks, and LwF's replays to the run's weights bit for bit.
* Latest-weights backward (lockstep, and real time replayed from its measured trace) and the
  hvp compensator (lockstep) on 2 ranks: the replay's weights, bit for bit.
* aL-SAR's freezing and similarity-aware sampler (on ER) in both modes on 2 ranks: freezing
  decided by a fixed cycle still gives the replay's
  weights bit for bit (lockstep on the same trace; real time replayed from its measured
  trace), and the books add up — per stage, a release for every datum whose frozen prefix
  covers it, updates plus skipped update rows equal to the trace's, updates plus releases equal
  to the backward rows — with adaptive freezing proper too (its Fisher traces travel between ranks).
* GPipe and 1F1B-flush on 3 ranks (P = 3 and P = 4, batched.py), in the same 3-rank session:
  test_batched_realtime.py's checks.
Timing is never asserted: the machine is shared and loaded.
"""

from __future__ import annotations

import json
import sys

import pytest

import tests.executor.distributed.test_batched_realtime as batched_checks
from tests.executor.distributed.harness import free_port, run_bounded
from tests.executor.distributed.pipelines import PER_STAGE

pytestmark = pytest.mark.slow

LIMIT = 240
LOCKSTEP_CASES = {
    2: (
        "t1-recompute",
        "t2-accumulation",
        "t3-omission-er",
        "t4-removed-worker",
        "pipedream-2bw",
        "hvp-compensation",
        "lwf",
        "mas",
        "mir",
    ),
    3: ("t3-omission-er", "pipedream-2bw", *PER_STAGE, *(f"{name}-p4" for name in PER_STAGE)),
}


def launch(nproc: int, program: str, out) -> None:
    argv = ["-m", "tests.executor.distributed.pipelines", program, str(out)]
    code = f"from executor.distributed.launch import launch_local; launch_local({argv!r}, {nproc})"
    done = run_bounded([sys.executable, "-c", code], LIMIT)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("ranks", [2, 3])
def test_lockstep_matches_the_replay_and_real_time_keeps_its_books(tmp_path, ranks):
    launch(ranks, "lockstep+realtime" if ranks == 2 else "lockstep+realtime+batched", tmp_path)
    measured = 0
    for case in LOCKSTEP_CASES[ranks]:
        report = json.loads((tmp_path / f"{case}.json").read_text())
        assert report["equal"], case
        assert report["moved"] and report["stale"] > 0, case  # the case exercises stale gradients
        distributed, replayed = report["efficacy"]  # the same backwards measured, the same numbers
        assert distributed == replayed, case
        measured += sum(s["samples"] for s in distributed)
    # One linear layer's gradient does not depend on its own weights (stale = latest: no sample);
    # the last stage's does, and a stale backward there is measured.
    assert measured > 0 or ranks == 3
    check_real_time(json.loads((tmp_path / f"p{ranks}.json").read_text()))
    if ranks == 2:
        check_freezing(tmp_path)
        check_latest_weights(tmp_path)
    # LwF, MAS and MIR across ranks in real time: the books, and for LwF the replay's weights
    # (MAS's importance passes run after a datum's last backward, MIR's scoring before its first
    # forward, not at those rows: no row of the trace says when). On 3 ranks also P = 4 with the
    # last rank owning stages 2 and 3.
    for prefix in ("p2",) if ranks == 2 else ("p3", "p4"):
        for name in PER_STAGE:
            check_real_time(json.loads((tmp_path / f"{prefix}-{name}.json").read_text()), faithful=name == "lwf")
    if ranks == 3:  # GPipe and 1F1B-flush, P = 3 and 4 (batched.py): test_batched_realtime's checks
        batched = {case: json.loads((tmp_path / f"{case}.json").read_text()) for case in batched_checks.CASES_3}
        for case in batched_checks.CASES_3:
            batched_checks.check_case(batched, case)


def check_latest_weights(out) -> None:
    # One owner per stage serializes a stage's ops: no update lands during a latest backward,
    # so nothing is stale; the weights still follow the recomputations' versions exactly.
    lockstep = json.loads((out / "latest-weights.json").read_text())
    assert lockstep["equal"] and lockstep["moved"] and lockstep["stale"] == 0
    check_real_time(json.loads((out / "p2-latest.json").read_text()))


def check_freezing(out) -> None:
    for case in ("freezing-scripted", "freezing-adaptive-er"):
        books = json.loads((out / f"{case}.json").read_text())
        # Stage 0 steps every two data (accumulation), stages 1 and 2 every datum.
        assert [u + s for u, s in zip(books["updates"], books["skipped"], strict=True)] == books["traced_updates"]
        assert books["frozen_backwards"][0] > 0 and books["frozen_backwards"][2] == 0, case
        assert books["skipped"][1:] == books["frozen_backwards"][1:], case
        assert books["skipped"][0] < books["frozen_backwards"][0], case  # a group keeps its other datum's gradient
    assert json.loads((out / "freezing-scripted.json").read_text())["equal"]
    real_time = json.loads((out / "p2-freezing-scripted.json").read_text())
    check_real_time(real_time)
    assert real_time["frozen_backwards"][0] > 0 and real_time["frozen_backwards"][1] == 0
    for stage in range(2):
        assert real_time["updates"][stage] + real_time["frozen_backwards"][stage] == real_time["bwd_rows"][stage]
        assert real_time["bwd_rows"][stage] == real_time["trained"]


def test_one_rank_owning_every_stage_runs_mir_in_process(tmp_path):
    # No launcher: this process is rank 0 of 1 (torchrun's variables), talking to itself.
    env = {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    done = run_bounded(
        [sys.executable, "-m", "tests.executor.distributed.pipelines", "realtime", str(tmp_path)], LIMIT, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    check_real_time(json.loads((tmp_path / "p1.json").read_text()))


def check_real_time(report: dict, faithful: bool = True) -> None:
    n = report["n"]
    assert report["trained"] + report["dropped"] == n  # drained: nothing left in flight
    assert report["in_flight_at_end"] == 0
    if report["predict_all"]:  # dropped data get an inference forward: everything is predicted
        assert report["unpredicted"] == 0 and report["predicted"] == n
    else:  # predicted by its own training forward, or not at all
        assert report["unpredicted"] == report["dropped"] == n - report["predicted"]
        assert report["predicted_mask"] == report["trained_mask"]
    assert report["trained"] > 0
    assert report["replay_equal"] or not faithful
    owners = report["owners"]
    assert all(owners[stage] == device for _, stage, device in report["transfers"])
    assert len(report["transfers"]) > 0 or len(set(owners)) == 1
    # The stream clock starts once every rank is ready, and every loop begins on time (startup.py).
    for ready_s, late_s in report["start"]:
        assert ready_s < 0
        assert late_s < 0.1  # loose: a loaded machine may wake a sleeper late; it was 0.2–0.3 s late before
