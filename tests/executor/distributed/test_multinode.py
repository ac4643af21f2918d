"""Two "machines" on loopback: `torchrun --nnodes 2 --rdzv-backend c10d --rdzv-endpoint
127.0.0.1:PORT`, one process each, run a P = 2 plan in real time end to end — the same rank
code as a one-machine launch, joined through torch's c10d rendezvous."""

from __future__ import annotations

import json
import sys
import uuid

import pytest

from tests.executor.distributed.harness import free_port, run_together

pytestmark = pytest.mark.slow


def test_two_nodes_run_a_two_stage_plan(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    run_id = uuid.uuid4().hex[:8]
    node = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", run_id, "--local-addr", "127.0.0.1",
        "--max-restarts", "0", "-m", "tests.executor.distributed.pipelines", "realtime", str(tmp_path),
    ]  # fmt: skip
    for done in run_together([node, node], 180):
        assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "p2.json").read_text())
    assert report["trained"] > 0 and report["trained"] + report["dropped"] == report["n"]
    assert report["replay_equal"]
    devices = {json.loads(line)["device"] for line in (tmp_path / "p2.trace.jsonl").read_text().splitlines()}
    assert {0, 1} <= devices  # both ranks ran ops
