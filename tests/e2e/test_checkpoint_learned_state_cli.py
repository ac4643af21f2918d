"""`ferret run --mode distributed --algorithm er --freezing adaptive --sampler similarity-aware
--checkpoint-every S` on 2 ranks (gloo, 127.0.0.1): a rank SIGKILLed after a checkpoint, the
resumed run trains every datum exactly once; every rank's saved learned state (freezing's
statistics, ER's memory and sampler) loads into fresh objects unchanged; and the checkpoint the
resumed run takes later shows those statistics went on from the loaded ones, not from zero.
MIR (which the executor runs only when one rank owns every stage), LwF and MAS: the same SIGKILL
and resume on that rank; the memory, the teacher / the importances and the consolidation counters
go on from the loaded ones. LwF and MAS on 2 ranks too, where each owner keeps its stages' share
(teacher; importance, Ω and anchor): every rank's share loads unchanged and goes on.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.cli import main
from executor.ledger import ByteLedger
from executor.models import build_model
from executor.ocl.algorithms import AlgorithmConfig, AlgorithmContext, build_algorithm
from executor.ocl.algorithms.base import Consolidation
from executor.ocl.freezing import WARMUP_BATCHES
from tests.e2e.test_run_distributed_cli import (  # noqa: F401  (made: the fixture)
    FERRET,
    LIMIT,
    kill_a_rank_after_the_first_checkpoint,
    made,
    run_args,
)
from tests.executor.distributed.harness import run_bounded
from tests.executor.ocl.helpers import assert_same_state

N, EVERY = 150, 40
LEARNING = ["--algorithm", "er", "--freezing", "adaptive", "--sampler", "similarity-aware"]
CONFIG = AlgorithmConfig(name="er", freezing="adaptive", sampler="similarity-aware")


def saved_states(checkpoint: Path, ranks: int = 2) -> list[dict]:
    return [torch.load(checkpoint / f"rank{r}.pt", weights_only=False)["algorithm"] for r in range(ranks)]


def applied_once(out: Path, n: int) -> None:
    """Every datum trained or dropped; no gradient applied twice across the cut, none lost."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained"] + summary["dropped"] == n
    rows = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    applied = Counter((r["stage"], s) for r in rows if r["kind"] == "update" for s in r["samples"])
    assert max(applied.values()) == 1
    trained = {r["sample"] for r in rows if r["kind"] == "bwd"}
    assert {s for (_, s) in applied} == trained and len(trained) == summary["trained"]


def later_checkpoint(out: Path, checkpoints: Path, cut: Path) -> tuple[Path, int]:
    """The newest checkpoint, which the resumed run took after `cut`, and how many data were
    trained before its position (their last stage's backward ran)."""
    later = sorted(checkpoints.glob("at-*"))[-1]
    assert later != cut, "the resumed run took no checkpoint"
    position = int(later.name.removeprefix("at-"))
    rows = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    last_stage = max(r["stage"] for r in rows if r["kind"] == "bwd")
    return later, sum(1 for r in rows if r["kind"] == "bwd" and r["stage"] == last_stage and r["sample"] < position)


def assert_loads_unchanged(state: dict, config: AlgorithmConfig = CONFIG) -> None:
    """A freshly built algorithm (another seed) loads `state` and gives it back bit for bit."""
    model = build_model("mnistnet", (1, 8, 8), 10, seed=1)
    fresh = build_algorithm(config, AlgorithmContext(10, 64, ByteLedger(), np.random.default_rng(123), 0.1))
    fresh.load_state_dict(state, model)
    assert_same_state(fresh.state_dict(), state)


@pytest.mark.slow
def test_learned_state_survives_sigkill_and_resume(tmp_path, made):  # noqa: F811  (the imported fixture)
    out, checkpoints = tmp_path / "run", tmp_path / "run.checkpoints"
    args = [*FERRET, *run_args(made, N, "40ms"), "--nproc", "2", *LEARNING, "--checkpoint-every", str(EVERY)]
    args += ["--out", str(out)]
    killed: list[float] = []
    first = run_bounded(args, LIMIT, poke=kill_a_rank_after_the_first_checkpoint(checkpoints, killed))
    assert first.returncode != 0 and killed, "the run ended before a rank could be killed"
    assert "killed by SIGKILL" in first.stderr.strip().splitlines()[-1], first.stderr[-2000:]
    cut = sorted(checkpoints.glob("at-*"))[-1]  # what the resume loads
    before = saved_states(cut)
    for state in before:
        assert_loads_unchanged(state)
    # Not vacuous: the last stage's rank decided past warm-up, the source's sampler learned.
    assert before[1]["freezing"]["batches"] > WARMUP_BATCHES
    assert np.abs(before[0]["sampler"]["similarity"]["mean_grad"]).sum() > 0
    assert before[0]["buffer"]["seen"] > 0

    resumed = run_bounded([*args, "--resume", str(checkpoints)], LIMIT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    applied_once(out, N)

    # A checkpoint the resumed run took: its counters count every datum since the stream began,
    # so they went on from the loaded state (one decision and one memory offer per trained datum).
    later, decided = later_checkpoint(out, checkpoints, cut)
    after = saved_states(later)
    assert after[1]["freezing"]["batches"] == decided
    assert after[0]["buffer"]["seen"] == decided
    assert after[1]["freezing"]["batches"] > before[1]["freezing"]["batches"]


@pytest.fixture(scope="module")
def one_rank(made):  # noqa: F811  (the imported fixture)
    """The same profile planned on one device: MIR needs the whole model where a datum enters, so
    the distributed executor runs it only when one rank owns every stage."""
    profile, two_rank_plan = made
    plan = two_rank_plan.with_name("plan-1.json")
    assert main(["plan", "--profile", str(profile), "--budget", "max", "--devices", "1", "--out", str(plan)]) == 0
    return profile, plan


def consolidations(steps: int, every: int) -> dict[str, int]:
    """LwF's / MAS's consolidation counters after `steps` trained data (one new row each)."""
    consolidation = Consolidation(every)
    for _ in range(steps):
        consolidation.due(0, 1)
    return consolidation.state_dict()


CONSOLIDATE = 20
WHOLE_MODEL = {  # algorithm → its config, and what its checkpoint holds once it learned something
    "mir": (AlgorithmConfig(name="mir"), lambda state: state["buffer"]["seen"] > 0),
    "lwf": (AlgorithmConfig(name="lwf", consolidate_every=CONSOLIDATE), lambda state: state["teacher"] is not None),
    "mas": (AlgorithmConfig(name="mas", consolidate_every=CONSOLIDATE), lambda state: bool(state["anchor"])),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WHOLE_MODEL))
def test_whole_model_algorithms_survive_sigkill_and_resume(tmp_path, one_rank, name):
    """MIR's memory, LwF's teacher and MAS's importances survive a SIGKILL: the resumed run trains
    every datum once, and a checkpoint it takes later counts every datum since the stream began
    (memory offers; consolidations; MAS's importance samples) — without the load, only those since
    the resume."""
    config, learned = WHOLE_MODEL[name]
    flags = [] if name == "mir" else ["--consolidate-every", str(CONSOLIDATE)]
    out, checkpoints = tmp_path / "run", tmp_path / "run.checkpoints"
    args = [*FERRET, *run_args(one_rank, N, "40ms"), "--nproc", "1", "--algorithm", name, *flags]
    args += ["--checkpoint-every", str(EVERY), "--out", str(out)]
    killed: list[float] = []
    first = run_bounded(args, LIMIT, poke=kill_a_rank_after_the_first_checkpoint(checkpoints, killed))
    assert first.returncode != 0 and killed, "the run ended before its rank could be killed"
    cut = sorted(checkpoints.glob("at-*"))[-1]
    (before,) = saved_states(cut, ranks=1)
    assert learned(before), f"{name} had learned nothing by datum {cut.name}"
    assert_loads_unchanged(before, config)

    resumed = run_bounded([*args, "--resume", str(checkpoints)], LIMIT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    applied_once(out, N)
    later, trained = later_checkpoint(out, checkpoints, cut)
    (after,) = saved_states(later, ranks=1)
    if name == "mir":
        assert after["buffer"]["seen"] == trained
    else:
        assert after["consolidation"] == consolidations(trained, CONSOLIDATE)
    if name == "mas":
        assert after["passes"] == trained and set(after["samples"].values()) == {trained}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lwf", "mas"])
def test_per_stage_algorithms_survive_sigkill_and_resume_on_two_ranks(tmp_path, made, name):  # noqa: F811
    """Across ranks each owner keeps its stages' teacher (LwF) or importance and anchor (MAS): a
    SIGKILL after a checkpoint, and the resumed run trains every datum once; every rank's share
    loads unchanged, and a later checkpoint's counters count every datum since the stream began
    (MAS: every stage's importance samples too — a checkpoint waits for the importance passes)."""
    config, learned = WHOLE_MODEL[name]
    out, checkpoints = tmp_path / "run", tmp_path / "run.checkpoints"
    args = [*FERRET, *run_args(made, N, "40ms"), "--nproc", "2", "--algorithm", name]
    args += ["--consolidate-every", str(CONSOLIDATE), "--checkpoint-every", str(EVERY), "--out", str(out)]
    killed: list[float] = []
    first = run_bounded(args, LIMIT, poke=kill_a_rank_after_the_first_checkpoint(checkpoints, killed))
    assert first.returncode != 0 and killed, "the run ended before a rank could be killed"
    cut = sorted(checkpoints.glob("at-*"))[-1]
    before = saved_states(cut)
    for state in before:
        assert learned(state), f"{name} had learned nothing on a rank by datum {cut.name}"
        assert_loads_unchanged(state, config)
    stages = [sorted(state["teacher"] if name == "lwf" else state["samples"]) for state in before]
    assert stages[0] and stages[1] and not set(stages[0]) & set(stages[1])  # each rank its own stages

    resumed = run_bounded([*args, "--resume", str(checkpoints)], LIMIT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    applied_once(out, N)
    later, trained = later_checkpoint(out, checkpoints, cut)
    source, other = saved_states(later)
    assert source["consolidation"] == consolidations(trained, CONSOLIDATE)
    if name == "mas":
        assert source["passes"] == trained
        assert {*source["samples"].values(), *other["samples"].values()} == {trained}
