"""GPipe and 1F1B-flush in real time on 2 and 3 ranks (gloo, 127.0.0.1): P = 2 with stage j on
rank j here; on 3 ranks P = 3, one stage each (the `BATCH` message, the activations and the
gradients relayed by rank 1, neither the source nor the last stage), and P = 4 on stages
0 | 1 | 2, 3 — those run in test_pipelines.py's 3-rank session, which applies these checks
(`check_case`).

Per case (batched.py): every datum is trained or dropped, and exactly the trained ones are
predicted (every one, with `--predict-all`); every gradient is applied with staleness 0; each stage's updates are the mini-batches
the source formed — the oldest waiting data, full batches but the stream's last — each applied
after the batch's last backward at that stage and before the next batch's first forward there;
GPipe's last stage runs the batch's backwards only after all its forwards, 1F1B-flush's
alternates (its window there is P − j = 1); a datum is dropped only when its worker runs a
batch and a full batch waits (the twin's rule). The measured trace, followed by the replay
executor (which checks every version, staleness and update), ends with the run's weights bit
for bit, and those are plain mini-batch Adam steps over the run's batches. Timing is never
asserted: the machine is shared and loaded.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.executor.distributed.harness import run_bounded

pytestmark = pytest.mark.slow

LIMIT = 240
CASES = ("gpipe", "1f1b", "gpipe-fast", "1f1b-omission")
# On 3 ranks, run in test_pipelines.py's 3-rank session (one start-up of torch per rank), which
# checks them with `check_case`.
CASES_3 = ("p3-gpipe-fast", "p3-1f1b-omission", "p4-gpipe", "p4-1f1b")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("batched")
    argv = ["-m", "tests.executor.distributed.batched", str(out)]
    code = f"from executor.distributed.launch import launch_local; launch_local({argv!r}, 2)"
    done = run_bounded([sys.executable, "-c", code], LIMIT)
    assert done.returncode == 0, done.stderr[-3000:]
    return {case: json.loads((out / f"{case}.json").read_text()) for case in CASES}


def check_case(reports: dict[str, dict], case: str) -> None:
    """Every check of this module on `case` of `reports` (a 3-rank session's)."""
    for check in (
        test_every_datum_is_trained_or_dropped_and_said_so,
        test_a_synchronous_pipeline_is_never_stale_and_replays_bit_for_bit,
        test_every_update_is_a_whole_batch_at_a_batch_boundary,
        test_the_last_stage_runs_gpipe_barriers_and_1f1b_alternation,
        test_a_datum_is_dropped_only_when_a_full_batch_waits_behind_a_running_one,
    ):
        check(reports, case)


@pytest.mark.parametrize("case", CASES)
def test_every_datum_is_trained_or_dropped_and_said_so(reports, case):
    r = reports[case]
    assert r["trained"] + r["dropped"] == r["n"] and r["in_flight_at_end"] == 0
    if r["predict_all"]:  # a dropped datum gets an inference forward: every datum is predicted
        assert r["unpredicted"] == 0 and all(r["predicted_mask"])
    else:  # predicted by its own training forward, or not at all
        assert r["unpredicted"] == r["dropped"]
        assert r["predicted_mask"] == r["trained_mask"]
    assert r["trained"] >= r["minibatch"]
    if case.endswith("gpipe-fast"):  # arrivals far faster than a batch runs: the buffer fills
        assert r["dropped"] > 0


@pytest.mark.parametrize("case", CASES)
def test_a_synchronous_pipeline_is_never_stale_and_replays_bit_for_bit(reports, case):
    r = reports[case]
    assert all(len(h) == 1 for h in r["staleness"]), r["staleness"]  # every gradient at staleness 0
    assert r["replay_equal"]
    if not case.endswith("omission"):  # every datum trains every layer: plain mini-batch steps
        assert r["minibatch_equal"]


@pytest.mark.parametrize("case", CASES)
def test_every_update_is_a_whole_batch_at_a_batch_boundary(reports, case):
    r = reports[case]
    last = r["P"] - 1
    trained = [i for i, t in enumerate(r["trained_mask"]) if t]
    batches = updates_of(r, last)  # the last stage: every datum's backward reaches it
    assert [s for b in batches for s in b] == trained  # the oldest waiting data, in order
    assert all(len(b) == r["minibatch"] for b in batches[:-1]) and len(batches[-1]) <= r["minibatch"]
    assert r["updates_per_stage"][last] == len(batches)
    reach = [{sample for kind, sample, j, _, _ in r["ops"] if kind == "bwd" and j == stage} for stage in range(last)]
    reach.append(set(trained))
    if case.endswith("omission"):
        assert 0 < len(reach[0]) < len(trained)  # short groups at stage 0: flushed
    for stage in range(last):
        assert updates_of(r, stage) == [
            [s for s in b if s in reach[stage]] for b in batches if any(s in reach[stage] for s in b)
        ]
    for stage in range(r["P"]):
        # The batches with a backward at this stage, each with the one after it (every datum
        # goes forward through every stage).
        closing = [(k, b) for k, b in enumerate(batches) if any(s in reach[stage] for s in b)]
        for (k, batch), (_, t_update, _) in zip(closing, updates_at(r, stage), strict=True):
            ends = [e for kind, s, j, _, e in r["ops"] if kind == "bwd" and j == stage and s in batch]
            assert t_update >= max(ends)
            nxt = batches[k + 1] if k + 1 < len(batches) else []
            starts = [b for kind, s, j, b, _ in r["ops"] if kind == "fwd" and j == stage and s in nxt]
            assert t_update <= min(starts, default=t_update), (stage, batch, nxt)


@pytest.mark.parametrize("case", CASES)
def test_the_last_stage_runs_gpipe_barriers_and_1f1b_alternation(reports, case):
    r = reports[case]
    last = r["P"] - 1
    for batch in updates_of(r, last):
        ops = sorted((b, kind, s) for kind, s, j, b, _ in r["ops"] if j == last and s in batch)
        kinds = [kind for _, kind, _ in ops]
        if "gpipe" in case:  # every forward of the batch, then every backward
            assert kinds == ["fwd"] * len(batch) + ["bwd"] * len(batch)
        else:  # window 1 at the last stage: a datum's backward before the next forward
            assert kinds == ["fwd", "bwd"] * len(batch)
            assert [s for _, _, s in ops] == [s for s in batch for _ in range(2)]


@pytest.mark.parametrize("case", CASES)
def test_a_datum_is_dropped_only_when_a_full_batch_waits_behind_a_running_one(reports, case):
    r = reports[case]
    trained = [i for i, t in enumerate(r["trained_mask"]) if t]
    first_fwd = {s: b for kind, s, j, b, _ in r["ops"] if kind == "fwd" and j == 0}
    for dropped in (i for i, t in enumerate(r["trained_mask"]) if not t):
        waiting = [s for s in trained if s < dropped][-r["minibatch"] :]
        assert len(waiting) == r["minibatch"]  # the buffer (bound = mini-batch) was full
        batch = next(b for b in updates_of(r, r["P"] - 1) if waiting[0] in b)
        assert batch == waiting  # they were waiting: the next batch, not yet started
        assert min(first_fwd[s] for s in waiting) >= arrival_of(r, dropped) - 1e-9


def updates_at(r: dict, stage: int) -> list[tuple[int, float, list[int]]]:
    return sorted((u for u in r["updates"] if u[0] == stage), key=lambda u: u[1])


def updates_of(r: dict, stage: int) -> list[list[int]]:
    return [samples for _, _, samples in updates_at(r, stage)]


def arrival_of(r: dict, sample: int) -> float:
    return r["arrivals"][sample]
