"""A rank's context from the launcher's environment, the backend choice, and which failure the
launcher blames."""

from __future__ import annotations

import pytest
import torch
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from executor.distributed.context import RankContext, choose_backend, under_launcher
from executor.distributed.faults import (
    EXIT_INTERRUPTED,
    EXIT_PEER_LOST,
    LOCAL_LAUNCH,
    describe_connection_error,
    fatal_on_failure,
    tell_launcher,
)
from executor.distributed.launch import describe_failure, describe_failures, root_failure
from planner.errors import FerretError

ENV = {"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}  # fmt: skip


def test_the_context_reads_torchrun_variables():
    ctx = RankContext.from_env("gloo", ENV)
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.local_world_size, ctx.node) == (2, 4, 0, 2, 1)
    assert ctx.device == torch.device("cpu") and ctx.backend == "gloo"
    assert under_launcher(ENV) and not under_launcher({})


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({}, "not started as a rank"),
        ({**ENV, "RANK": "4"}, "outside WORLD_SIZE"),
        ({**ENV, "MASTER_PORT": "x"}, "malformed"),
    ],
)
def test_a_bad_environment_is_one_line(env, match):
    with pytest.raises(FerretError, match=match):
        RankContext.from_env("gloo", env)


def test_backend_defaults_to_what_the_machine_has():
    assert choose_backend() == ("nccl" if torch.cuda.is_available() else "gloo")
    assert choose_backend("gloo") == "gloo"
    with pytest.raises(FerretError, match="unknown backend"):
        choose_backend("mpi")
    if not torch.cuda.is_available():
        with pytest.raises(FerretError, match="needs CUDA"):
            choose_backend("nccl")


def _failure(local_rank: int, code: int, timestamp: int) -> ProcessFailure:
    failure = ProcessFailure(local_rank=local_rank, pid=100 + local_rank, exitcode=code, error_file="/nonexistent")
    failure.timestamp = timestamp
    return failure


def test_the_launcher_blames_the_cause_not_the_reactions():
    # Rank 0 noticed the loss first (same second), rank 2 was stopped; rank 1 was killed.
    failures = {0: _failure(0, EXIT_PEER_LOST, 10), 1: _failure(1, -9, 10), 2: _failure(2, EXIT_INTERRUPTED, 9)}
    rank, failure = root_failure(failures)
    assert rank == 1 and describe_failure(failure) == "killed by SIGKILL (pid 101)"
    assert root_failure({3: _failure(3, EXIT_PEER_LOST, 5)})[0] == 3
    # A rank stopped by the agent's SIGTERM before it could catch it is a reaction too.
    assert root_failure({0: _failure(0, -15, 4), 1: _failure(1, 1, 5)})[0] == 1
    assert "status 1" in describe_failure(_failure(0, 1, 0))
    # A rank that ends on SIGTERM through its own handler (exit 143) reacted too.
    assert root_failure({0: _failure(0, 143, 4), 1: _failure(1, 2, 5)})[0] == 1


def test_a_ranks_last_line_reaches_the_launcher(tmp_path, monkeypatch):
    path = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(path))
    monkeypatch.delenv(LOCAL_LAUNCH, raising=False)
    assert not tell_launcher("x") and not path.exists()  # under torchrun a rank prints its line
    monkeypatch.setenv(LOCAL_LAUNCH, "1")
    assert tell_launcher("unknown dataset 'nope'")
    failure = ProcessFailure(local_rank=0, pid=7, exitcode=2, error_file=str(path))
    assert describe_failure(failure) == "unknown dataset 'nope'"


def test_a_closed_connection_reads_as_a_dead_peer():
    exc = RuntimeError(
        "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:538] Connection closed by peer [127.0.0.1]:3"
    )
    assert describe_connection_error(exc) == "its connection closed (the process died or was killed)"
    assert describe_connection_error(RuntimeError("[x.cc:1] Timed out")) == "Timed out"


def test_the_launchers_line_says_how_every_rank_ended_the_cause_first():
    # A stall: rank 1's watchdog fired; rank 0 was stuck in C (killed after SIGTERM), rank 2 stopped.
    failures = {0: _failure(0, -9, 12), 1: _failure(1, 4, 11), 2: _failure(2, EXIT_INTERRUPTED, 12)}
    line = describe_failures(failures, 3)
    assert line == (
        "rank 1 of 3 failed: exited with status 4 (pid 101; its own message is above)"
        "; then rank 0: killed by SIGKILL (pid 100)"
        "; then rank 2: exited with status 130 (pid 102; its own message is above)"
    )
    assert describe_failures({1: _failure(1, -9, 3)}, 2) == "rank 1 of 2 failed: killed by SIGKILL (pid 101)"


def test_every_rank_refusing_the_same_input_is_said_once(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCAL_LAUNCH, "1")
    failures = {}
    for rank in range(2):
        path = tmp_path / f"error{rank}.json"
        monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(path))
        assert tell_launcher("unknown dataset 'nope'")
        failures[rank] = ProcessFailure(local_rank=rank, pid=rank, exitcode=2, error_file=str(path))
    assert describe_failures(failures, 2) == "rank 0 of 2 failed: unknown dataset 'nope'"


def test_a_stopped_rank_says_where_it_was_stopped(tmp_path, monkeypatch):
    path = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(path))
    monkeypatch.setenv(LOCAL_LAUNCH, "1")

    def waiting_for_a_peer() -> None:
        raise KeyboardInterrupt("SIGTERM")

    with pytest.raises(SystemExit), monkeypatch.context() as m:
        m.setattr("os._exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
        with fatal_on_failure(0):
            waiting_for_a_peer()
    said = describe_failure(ProcessFailure(local_rank=0, pid=1, exitcode=EXIT_INTERRUPTED, error_file=str(path)))
    assert said.startswith(
        "stopped by SIGTERM in test_a_stopped_rank_says_where_it_was_stopped → waiting_for_a_peer (test_context.py:"
    ), said
