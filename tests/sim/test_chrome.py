"""The Chrome view: tracks, caps, and the column-wise writer against a row-by-row reference."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.plan import WorkerConfig
from sim import MemoryTrace, SimConfig, simulate
from sim.chrome import STREAM_TRACK, track_metadata, write_chrome_trace
from sim.trace import TraceRow
from tests.sim.builders import balanced_profile, make_plan
from tests.sim.scenarios import Scenario, scenarios


def _scenario_trace(samples: int = 12) -> MemoryTrace:
    # Accumulation (multi-sample updates), recomputation, links and memory rows.
    P = 3
    workers = [WorkerConfig(n, n == 1, (2, 1, 1), (0, 0, 0)) for n in range(2)]
    plan = make_plan(workers, P, 0.1)
    trace = MemoryTrace()
    config = SimConfig(link_latency_s=0.01, trace_memory=True, concurrency=2)
    simulate(plan, balanced_profile(P), samples, config=config, trace=trace)
    trace.flush()
    return trace


def _reference_line(ev: TraceRow) -> str:
    """One event as the first writer formatted it, an f-string per row (the oracle)."""
    ts = ev.t_start * 1e6
    if ev.kind in ("arrive", "drop"):
        return (
            f'{{"name":"{ev.kind} {ev.sample}","cat":"{ev.kind}","ph":"i","s":"t","ts":{ts!r},"pid":0,'
            f'"tid":{STREAM_TRACK},"args":{{"sample":{ev.sample},"worker":{ev.worker}}}}}'
        )
    if ev.kind == "mem":
        return f'{{"name":"memory device {ev.device}","ph":"C","ts":{ts!r},"pid":0,"args":{{"bytes":{ev.bytes}}}}}'
    args = f'"sample":{ev.sample},"worker":{ev.worker},"stage":{ev.stage},"version":{ev.version}'
    if ev.kind in ("bwd", "update"):
        args += f',"staleness":{ev.staleness}'
    if ev.kind == "update":
        args += ',"samples":[' + ",".join(map(str, ev.samples)) + "]"
    if ev.bytes:
        args += f',"bytes":{ev.bytes}'
    name = f"{ev.kind} s{ev.stage}" if ev.kind == "update" else f"{ev.kind} {ev.sample} s{ev.stage}"
    dur = (ev.t_end - ev.t_start) * 1e6
    return (
        f'{{"name":"{name}","cat":"{ev.kind}","ph":"X","ts":{ts!r},"dur":{dur!r},"pid":0,"tid":{ev.device},'
        f'"args":{{{args}}}}}'
    )


def _reference(events: list[TraceRow], max_events: int | None) -> str:
    kept = events if max_events is None else events[:max_events]
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    devices = {e.device for e in kept if e.device >= 0}
    return (
        '{"displayTimeUnit":"ms","traceEvents":[\n'
        + "".join(_reference_line(e) + ",\n" for e in kept)
        + ",\n".join(dumps(m) for m in track_metadata(devices))
        + '\n],"otherData":'
        + dumps({"source": "ferret sim", "truncated": len(kept) < len(events)})
        + "}\n"
    )


def test_chrome_trace_has_one_track_per_device_and_a_slice_per_op(tmp_path):
    trace = _scenario_trace()
    events = trace.events()
    out = tmp_path / "chrome.json"
    written = write_chrome_trace(trace.chunks, out)
    doc = json.loads(out.read_text())
    assert doc["otherData"]["truncated"] is False
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    ops = [e for e in events if e.kind in ("fwd", "recompute", "bwd", "update", "send", "recv")]
    assert len(slices) == len(ops)
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "thread_name"}
    devices = {e.device for e in ops}
    assert names == {**{d: f"device {d}" for d in devices}, STREAM_TRACK: "stream"}
    assert {e["tid"] for e in slices} == devices
    assert written == len(events) == len(doc["traceEvents"]) - len([e for e in doc["traceEvents"] if e["ph"] == "M"])
    fwd = next(e for e in events if e.kind == "fwd")
    first = next(e for e in slices if e["cat"] == "fwd")
    assert first["ts"] == fwd.t_start * 1e6 and first["dur"] == (fwd.t_end - fwd.t_start) * 1e6


def test_chrome_trace_is_capped_and_says_so(tmp_path):
    trace = _scenario_trace()
    out = tmp_path / "chrome.json"
    assert write_chrome_trace(trace.chunks, out, max_events=5) == 5
    doc = json.loads(out.read_text())
    assert doc["otherData"]["truncated"] is True
    assert len([e for e in doc["traceEvents"] if e["ph"] != "M"]) == 5


@pytest.mark.parametrize("chunk_rows", [7, 64, 16384])
@pytest.mark.parametrize("cap", [None, 0, 1, 13, 14, 200])
def test_the_column_writer_gives_the_reference_bytes_across_chunks_and_caps(tmp_path, chunk_rows, cap):
    trace = MemoryTrace()
    trace.chunk_rows = chunk_rows
    P = 3
    workers = [WorkerConfig(n, n == 1, (2, 1, 1), (0, 0, 0)) for n in range(2)]
    simulate(make_plan(workers, P, 0.1), balanced_profile(P), 12, config=SimConfig(link_latency_s=0.01,
             trace_memory=True, concurrency=2), trace=trace)  # fmt: skip
    events = trace.events()
    assert {e.kind for e in events} >= {"arrive", "fwd", "recompute", "bwd", "update", "send", "recv", "mem"}
    out = tmp_path / "chrome.json"
    assert write_chrome_trace(trace.chunks, out, cap) == len(events if cap is None else events[:cap])
    assert out.read_text() == _reference(events, cap)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(max_samples=30), cap=st.one_of(st.none(), st.integers(0, 400)))
def test_random_runs_give_the_reference_bytes(tmp_path_factory, scenario: Scenario, cap: int | None):
    trace = MemoryTrace()
    simulate(
        scenario.plan, scenario.profile, scenario.samples, scenario.arrivals, scenario.seed, scenario.config, trace
    )
    out = tmp_path_factory.mktemp("chrome") / "chrome.json"
    events = trace.events()
    write_chrome_trace(trace.chunks, out, cap)
    assert out.read_text() == _reference(events, cap)
    os.unlink(out)
