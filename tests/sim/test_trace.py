"""The trace files: JSON Lines and CSV round trips, and clear read errors (the Chrome view: test_chrome.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planner.errors import FerretError
from planner.plan import WorkerConfig
from sim import FileTrace, MemoryTrace, NullTrace, SimConfig, read_trace, simulate
from sim.trace import FIELDS, KINDS, TraceRow
from sim.trace_files import read_chunks
from tests.sim.builders import balanced_profile, make_plan


def _scenario():
    # Accumulation (multi-sample updates), recomputation and links: every row kind but `predict`.
    P = 3
    workers = [WorkerConfig(n, n == 1, (2, 1, 1), (0, 0, 0)) for n in range(2)]
    plan = make_plan(workers, P, 0.1)
    config = SimConfig(link_latency_s=0.01, trace_memory=True, concurrency=2)
    return plan, balanced_profile(P), config


@pytest.mark.parametrize("fmt", ["ftrace", "jsonl", "csv"])
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
    if fmt == "ftrace":  # binary: every float exactly
        assert got == expected


def test_jsonl_rows_carry_every_schema_field_and_samples_only_on_updates(tmp_path):
    plan, profile, config = _scenario()
    path = tmp_path / "trace.jsonl"
    with FileTrace(path) as trace:
        simulate(plan, profile, 10, config=config, trace=trace)
    for line in path.read_text().splitlines():
        row = json.loads(line)
        keys = set(FIELDS) if row["kind"] == "update" else set(FIELDS) - {"samples"}
        assert set(row) == keys


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


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("device", -68_752_627_971_135, "device -68752627971135 is outside"),  # found by the CLI fuzzer
        ("worker", 2**31, "worker 2147483648 is outside"),
        ("sample", 2**63, "sample 9223372036854775808 is outside"),
        ("samples", [1, 2**63], "samples must be"),
    ],
)
def test_a_text_row_whose_integer_overflows_its_column_is_a_user_error(tmp_path, field, value, message):
    # Text rows are packed into the binary rows' fixed-width columns; an integer that does not fit
    # is refused as the file's line, never a struct error from the packing.
    row = TraceRow("update", 0, 0, 0, 0, 0.0, 1.0, samples=(0,)).to_json()
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps(row) + "\n" + json.dumps({**row, field: value}) + "\n")
    with pytest.raises(FerretError, match=rf"t\.jsonl line 2 is not a trace event: {message}"):
        list(read_chunks(jsonl))
    bad = TraceRow(**{**TraceRow("update", 0, 0, 0, 0, 0.0, 1.0).to_json(), field: value})
    csv_path = tmp_path / "t.csv"
    samples = " ".join(map(str, bad.samples))
    csv_path.write_text(",".join(FIELDS) + "\n" + ",".join(str(getattr(bad, f)) for f in FIELDS[:-1]) + f",{samples}\n")
    with pytest.raises(FerretError, match=rf"t\.csv line 2 is not a trace event: {message}"):
        list(read_chunks(csv_path))


def test_unknown_trace_format_is_a_user_error(tmp_path):
    with pytest.raises(FerretError, match="unknown trace format 'xml'; choose one of ftrace, jsonl, csv"):
        FileTrace(tmp_path / "t.xml", "xml")


def test_ftrace_is_numpy_chunks_any_numpy_reads(tmp_path):
    plan, profile, config = _scenario()
    kept = MemoryTrace()
    simulate(plan, profile, 30, config=config, trace=kept)
    path = tmp_path / "trace.ftrace"
    with FileTrace(path) as trace:
        trace.chunk_rows = 50  # several chunks
        simulate(plan, profile, 30, config=config, trace=trace)
    chunks = []
    with path.open("rb") as f:
        while f.peek(1):
            chunks.append((np.lib.format.read_array(f), np.lib.format.read_array(f)))
    assert len(chunks) > 2
    rows = np.concatenate([r for r, _ in chunks])
    samples = np.concatenate([s for _, s in chunks])
    expected = kept.events()
    assert [KINDS[k] for k in rows["kind"]] == [e.kind for e in expected]
    assert rows["t_end"].tolist() == [e.t_end for e in expected]
    assert samples.tolist() == [s for e in expected for s in e.samples]
    assert [c.rows.tolist() for c in read_chunks(path)] == [r.tolist() for r, _ in chunks]


def test_the_suffix_names_the_format_and_every_reader_takes_every_format(tmp_path):
    plan, profile, config = _scenario()
    rows = {}
    for name in ("t.ftrace", "t.jsonl", "t.csv", "t.bin"):
        with FileTrace(tmp_path / name) as trace:
            simulate(plan, profile, 8, config=config, trace=trace)
        rows[name] = [(r.kind, r.sample, r.samples, round(r.t_end, 9)) for r in read_trace(tmp_path / name)]
    assert (tmp_path / "t.jsonl").read_text().startswith('{"kind":')
    assert (tmp_path / "t.bin").read_bytes().startswith(b"\x93NUMPY")  # not .jsonl/.csv: binary
    assert len({tuple(r) for r in rows.values()}) == 1


def test_a_null_trace_keeps_nothing_but_the_result_counts_every_row(tmp_path):
    plan, profile, config = _scenario()
    null = NullTrace()
    counted = simulate(plan, profile, 20, config=config, trace=null)
    kept = MemoryTrace()
    written = simulate(plan, profile, 20, config=config, trace=kept)
    assert null.count == 0 and not null.rows
    assert counted.events == written.events == len(kept.events()) == kept.count


def test_a_broken_or_foreign_binary_trace_is_a_user_error(tmp_path):
    truncated = tmp_path / "cut.ftrace"
    with FileTrace(truncated) as trace:
        trace.add(TraceRow("arrive", 0, 0, -1, -1, 0.0, 0.0))
    truncated.write_bytes(truncated.read_bytes()[:-12])
    with pytest.raises(FerretError, match="not a complete ftrace file"):
        list(read_trace(truncated))
    foreign = tmp_path / "other.ftrace"
    with foreign.open("wb") as f:
        np.lib.format.write_array(f, np.zeros(3))
        np.lib.format.write_array(f, np.zeros(0, dtype=np.int64))
    with pytest.raises(FerretError, match="not an ftrace file of this schema"):
        list(read_trace(foreign))
    unknown = tmp_path / "t.jsonl"
    unknown.write_text(json.dumps({**TraceRow("fwd", 0, 0, 0, 0, 0.0, 1.0).to_json(), "kind": "teleport"}) + "\n")
    with pytest.raises(FerretError, match="line 1: unknown kind 'teleport'"):
        list(read_trace(unknown))
