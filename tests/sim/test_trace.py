"""The trace files: JSON Lines and CSV round trips, the Chrome export, and clear read errors."""

from __future__ import annotations

import json

import pytest

from planner.errors import FerretError
from planner.plan import WorkerConfig
from sim import FileTrace, MemoryTrace, SimConfig, read_trace, simulate
from sim.chrome import STREAM_TRACK, write_chrome_trace
from sim.trace import FIELDS, KINDS, TraceRow
from tests.sim.builders import balanced_profile, make_plan


def _scenario():
    # Accumulation (multi-sample updates), recomputation and links: every row kind but `predict`.
    P = 3
    workers = [WorkerConfig(n, n == 1, (2, 1, 1), (0, 0, 0)) for n in range(2)]
    plan = make_plan(workers, P, 0.1)
    config = SimConfig(link_latency_s=0.01, trace_memory=True, concurrency=2)
    return plan, balanced_profile(P), config


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_written_trace_reads_back_as_the_same_events(tmp_path, fmt):
    plan, profile, config = _scenario()
    kept = MemoryTrace()
    simulate(plan, profile, 30, config=config, trace=kept)
    path = tmp_path / f"trace.{fmt}"
    with FileTrace(path, fmt) as trace:
        result = simulate(plan, profile, 30, config=config, trace=trace)
    expected, got = kept.events(), list(read_trace(path))
    assert len(got) == len(expected) == result.events
    assert {e.kind for e in got} == set(KINDS) - {"predict"}
    for a, b in zip(got, expected, strict=True):
        assert (a.kind, a.sample, a.worker, a.stage, a.device, a.version, a.staleness, a.bytes, a.samples) == (
            b.kind, b.sample, b.worker, b.stage, b.device, b.version, b.staleness, b.bytes, b.samples
        )  # fmt: skip
        assert a.t_start == pytest.approx(b.t_start, rel=1e-11, abs=1e-15)
        assert a.t_end == pytest.approx(b.t_end, rel=1e-11, abs=1e-15)
    assert any(len(e.samples) == 2 for e in got if e.kind == "update")


def test_jsonl_rows_carry_every_schema_field_and_samples_only_on_updates(tmp_path):
    plan, profile, config = _scenario()
    path = tmp_path / "trace.jsonl"
    with FileTrace(path) as trace:
        simulate(plan, profile, 10, config=config, trace=trace)
    for line in path.read_text().splitlines():
        row = json.loads(line)
        keys = set(FIELDS) if row["kind"] == "update" else set(FIELDS) - {"samples"}
        assert set(row) == keys


def test_chrome_trace_has_one_track_per_device_and_a_slice_per_op(tmp_path):
    plan, profile, config = _scenario()
    trace = MemoryTrace()
    simulate(plan, profile, 12, config=config, trace=trace)
    events = trace.events()
    out = tmp_path / "chrome.json"
    written = write_chrome_trace(events, out)
    doc = json.loads(out.read_text())
    assert doc["otherData"]["truncated"] is False
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    ops = [e for e in events if e.kind in ("fwd", "recompute", "bwd", "update", "send", "recv")]
    assert len(slices) == len(ops)
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "thread_name"}
    devices = {e.device for e in ops}
    assert names == {**{d: f"device {d}" for d in devices}, STREAM_TRACK: "stream"}
    assert {e["tid"] for e in slices} == devices
    assert written == len(doc["traceEvents"]) - len([e for e in doc["traceEvents"] if e["ph"] == "M"])
    fwd = next(e for e in events if e.kind == "fwd")
    first = next(e for e in slices if e["cat"] == "fwd")
    assert first["ts"] == pytest.approx(fwd.t_start * 1e6) and first["dur"] == pytest.approx(
        (fwd.t_end - fwd.t_start) * 1e6
    )


def test_chrome_trace_is_capped_and_says_so(tmp_path):
    plan, profile, config = _scenario()
    trace = MemoryTrace()
    simulate(plan, profile, 12, config=config, trace=trace)
    out = tmp_path / "chrome.json"
    assert write_chrome_trace(trace.events(), out, max_events=5) == 5
    doc = json.loads(out.read_text())
    assert doc["otherData"]["truncated"] is True
    assert len([e for e in doc["traceEvents"] if e["ph"] != "M"]) == 5


def test_reading_a_broken_trace_names_the_file_and_line(tmp_path):
    good = TraceRow("fwd", 0, 0, 0, 0, 0.0, 1.0).to_json()
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good) + "\n{not json}\n")
    with pytest.raises(FerretError, match=r"t\.jsonl line 2"):
        list(read_trace(path))
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("a,b\n1,2\n")
    with pytest.raises(FerretError, match="no trace header"):
        list(read_trace(csv_path))
    with pytest.raises(FerretError, match="trace not found"):
        list(read_trace(tmp_path / "missing.jsonl"))


def test_unknown_trace_format_is_a_user_error(tmp_path):
    with pytest.raises(FerretError, match="unknown trace format 'xml'"):
        FileTrace(tmp_path / "t.xml", "xml")
