"""CLI fuzzing (issue 13): every discovered command's flags, and every JSON or CSV input, fed
generated malformed values through `analysis.cli.main`, in process.

Whatever the input, a command ends in exit 0 or 2, never a traceback (an exception other than
SystemExit fails the test with it); an error is one line on stderr, writes no output and leaves
no staging folder; every call finishes within `BOUND_S`. Work limits are set tight on every
call, so that a valid but large request is refused rather than run.

Examples per test scale with the hypothesis profile: a quarter of its `max_examples` (25 in CI,
derandomized); `pytest --hypothesis-profile fuzz` runs ten times as many (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import copy
import io
import itertools
import json
import os
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analysis.cli import as_typed, build_parser, discover_commands, main
from executor.distributed.options import GROUP as DISTRIBUTED_GROUP
from tests.analysis.twin_runs import trace_rows

BOUND_S = 120.0
TIGHT = ["--max-events", "20000", "--max-points", "12", "--max-workers", "64", "--max-memory", "256MiB"]
EXAMPLES = max(10, settings().max_examples // 4)
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
_counter = itertools.count()

# Values a user could type that have broken commands before: extremes, unit mistakes, junk.
NASTY = [
    *("", " ", "0", "-0", "-1", "1", "3", "0.5", "1e308", "-1e308", "inf", "-inf", "nan", "1e-320", "5e-324"),
    *("99999999999999999999", "9223372036854775808", "1e25GiB", "0.3B", "1PiB", "64MiB", "2ms", "0ns", "1e-300s"),
    *("1/s", "1e300/s", "0.5/ms", "1µs", "−1", "abc", "x=1", "=", "tasks=abc", "tasks=0", "1,2", "1,2,3,4", "a,b"),
    *("auto", "auto:0", "auto:99999999", "1B:1GiB:+1B", "4MiB:1MiB:x2", "1MiB:2MiB:x1.0000001", "1KiB,2KiB"),
    *("trace:", "trace:/nonexistent.csv", "builtin:nope", "builtin:mnistnet-titan-xp", "roofline:h100", "cuda"),
    *("cuda:7", "/dev/null", "/", ".", "..", "x" * 300, "num_classes=1", "num_classes=99999999", "shape=0,0"),
    *("train_size=2000000000", "test_fraction=1.5", "test_fraction=0", "sigma=-1", "class_order=upside-down"),
]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
VALUE = st.one_of(
    st.sampled_from(NASTY),
    TEXT,
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
# Values a flag takes when used as meant: examples give the deeper code paths a chance.
PLAUSIBLE = ["0", "1", "2", "3", "10", "0.5", "1e-6", "1e6", "64MiB", "1KiB", "1ms", "20us", "1/s", "0.9,0.999"]
OPTION_KEYS = ["tasks", "sigma", "class_order", "num_classes", "shape", "train_size", "test_size", "noise", "drift"]
OPTION_KEYS += ["periods", "test_fraction", "lam", "momentum", "batch", "window", "lr", "bogus"]
# Flags that only set how much of the machine a call may use: fixed, not fuzzed.
NOT_FUZZED = {"--help", "--out", "--jobs", "--threads", "--repeat-of", *TIGHT[::2]}


def call(argv: list[str]) -> tuple[int, str, str, float]:
    """`ferret argv` in process: (exit code, stdout, stderr, seconds); other exceptions propagate."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2 if exc.code else 0
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - started


def check_outcome(argv: list[str], out: Path, code: int, err: str, seconds: float) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, err
    if code == 2:
        assert len(lines) == 1, (argv, err)
        assert not out.exists() and not any(out.parent.glob(f"{out.stem}.*.json")), (argv, "wrote on error")
    assert not list(out.parent.glob(".*.partial")), (argv, "left a staging folder")
    assert seconds < BOUND_S, (argv, seconds)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A profile and plans for mnistnet on digits (8×8), a simulation, two run folders and a
    replay of the simulated plan (the measured side of validate and calibrate)."""
    root = tmp_path_factory.mktemp("fuzz-inputs")
    p, plan = str(root / "p.json"), str(root / "plan.json")
    steps = {
        "profile": ["profile", "--model", "mnistnet", "--input-shape", "1,8,8", "--device", "roofline:h100"],
        "plan": ["plan", "--profile", p],
        "plan2": ["plan", "--profile", p, "--devices", "2"],
        "sim": ["simulate", "--plan", plan, "--profile", p, "--samples", "30"],
        "run": ["run", "--profile", p, "--samples", "30", "--eval-every", "10"],
        "run2": ["run", "--profile", p, "--samples", "30", "--framework", "1-skip"],
        "replay": ["run", "--plan", plan, "--profile", p, "--samples", "30", "--eval-every", "0"],
    }
    outs = {"profile": "p.json", "plan": "plan.json", "plan2": "plan2.json", "sim": "sim", "run": "run"}
    outs |= {"run2": "run2", "replay": "replay"}
    for key, argv in steps.items():
        code, _, err, _ = call([*argv, "--out", str(root / outs[key])])
        assert code == 0, err
    return {"root": root, **{key: root / name for key, name in outs.items()}}


# ----------------------------------------------------------------------------- flags


# `deploy` profiles, plans and runs for minutes when its flags are valid: fuzzed with no room for
# work, it refuses after every check of its flags (tests/e2e/test_deploy_cli.py runs it).
NO_WORK = {"deploy": ["--max-events", "1"]}


def _base_argv(command: str, inputs: dict[str, Path]) -> list[str]:
    """The smallest valid call of each command (a new command runs with its flags alone)."""
    p, plan, sim, replay = str(inputs["profile"]), str(inputs["plan"]), str(inputs["sim"]), str(inputs["replay"])
    placed = ["--plan", str(inputs["plan2"]), "--nproc", "2"]
    return {
        "profile": ["--model", "mnistnet", "--input-shape", "1,8,8", "--device", "roofline:h100"],
        "plan": ["--profile", p],
        "simulate": ["--plan", plan, "--profile", p, "--samples", "20"],
        "whatif": ["--profile", p, "--budgets", "1MiB", "--strategies", "ferret", "--samples", "20", "--jobs", "1"],
        "run": ["--profile", p, "--samples", "20", "--eval-every", "0"],
        "compare": [str(inputs["run"]), str(inputs["run2"])],
        "validate": ["--predicted", sim, "--measured", replay],
        "calibrate": ["--measured", replay, "--profile", p],
        "run-distributed": [*placed, "--profile", p, "--mode", "distributed", "--samples", "12", "--eval-every", "0"],
    }.get(command, [])


def _fuzzable(command: str, group: str | None = None) -> list[argparse.Action]:
    """The command's flags (of one help section, with `group`), bar those that are not fuzzed."""
    parser = build_parser(discover_commands())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    populated = sub.choices[command].populated()  # type: ignore[attr-defined]
    actions = populated._actions
    if group is not None:
        actions = next(g._group_actions for g in populated._action_groups if g.title == group)
    return [a for a in actions if a.option_strings and not set(a.option_strings) & NOT_FUZZED]


def _flag_values(action: argparse.Action) -> st.SearchStrategy[list[str]]:
    """Junk, or what the flag takes when used as meant (its choices, its default, a plausible
    value of its kind, KEY=VALUE with a real key)."""
    flag = action.option_strings[-1]
    if action.nargs == 0:
        return st.just([flag])
    meant: list[str] = list(action.choices or []) or list(PLAUSIBLE)
    if action.default not in (None, False, [], argparse.SUPPRESS):
        meant.append(as_typed(action.default))
    if action.metavar == "KEY=VALUE":
        keyed = st.builds(
            lambda k, v: f"{k}={v}", st.sampled_from(OPTION_KEYS), st.one_of(st.sampled_from(meant), VALUE)
        )
        return keyed.map(lambda value: [flag, value])
    return st.one_of(*[st.sampled_from(meant)] * 3, VALUE).map(lambda value: [flag, value])


def _fuzz_command(
    command: str, inputs: dict[str, Path], data: st.DataObject, actions: list[argparse.Action], base: list[str]
) -> None:
    chosen = data.draw(st.lists(st.sampled_from(actions), min_size=1, max_size=3, unique_by=id), label="flags")
    argv = [command, *base]
    for action in chosen:
        argv += data.draw(_flag_values(action), label=action.option_strings[-1])
    out = inputs["root"] / f"out-{next(_counter)}" / ("o.json" if command in ("profile", "plan") else "o")
    argv += [*TIGHT, *NO_WORK.get(command, []), "--out", str(out)]
    code, _, err, seconds = call(argv)
    event(f"exit {code}")
    check_outcome(argv, out, code, err, seconds)


COMMANDS = sorted(discover_commands())


@pytest.mark.parametrize("command", COMMANDS)
@FUZZ
@given(data=st.data())
def test_every_flag_of_every_command_takes_any_text(inputs, command, data):
    _fuzz_command(command, inputs, data, _fuzzable(command), _base_argv(command, inputs))


@settings(FUZZ, max_examples=max(3, EXAMPLES // 5))
@given(data=st.data())
def test_distributed_flags_take_any_text(inputs, data):
    """`run --mode distributed`'s own flags on a plan placed on 2 devices (a valid call starts
    two ranks: few examples). It runs in a scratch folder: a relative --checkpoint-dir lands there."""
    actions = _fuzzable("run", DISTRIBUTED_GROUP)
    here = os.getcwd()
    os.chdir(inputs["root"])
    try:
        _fuzz_command("run", inputs, data, actions, _base_argv("run-distributed", inputs))
    finally:
        os.chdir(here)


# ----------------------------------------------------------------------------- JSON and CSV inputs

JSON_VALUE = st.one_of(
    st.sampled_from(
        [None, True, -1, 0, 1, 2**63, 2**70, -(2**63), 1e308, -1e308, 1e-320, 5e-324, 0.5, "x", "", [], {}]
    ),
    st.integers(-(2**66), 2**66),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(-3, 10**9), max_size=4),
    TEXT,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _paths(value, (*prefix, i))
    return out


def _mutated(doc: Any, data: st.DataObject) -> Any:
    """`doc` with one to three values replaced, removed, or given an extra key."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(doc)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        *head, last = path
        parent = doc
        for key in head:
            parent = parent[key]
        how = data.draw(st.sampled_from(["replace", "replace", "remove", "add"]), label="how")
        if how == "remove" and isinstance(parent, dict):
            del parent[last]
        elif how == "add" and isinstance(parent, dict):
            parent[data.draw(TEXT, label="key")] = data.draw(JSON_VALUE, label="value")
        else:
            parent[last] = data.draw(JSON_VALUE, label="value")
    return doc


def _write(root: Path, name: str, text: str) -> Path:
    folder = root / f"doc-{next(_counter)}"
    folder.mkdir()
    path = folder / name
    path.write_text(text)
    return path


def _run_on(argv: list[str], out: Path) -> None:
    argv = [*argv, *TIGHT, "--out", str(out)]
    code, _, err, seconds = call(argv)
    event(f"exit {code}")
    check_outcome(argv, out, code, err, seconds)


@FUZZ
@given(data=st.data())
def test_malformed_profiles(inputs, data):
    doc = _mutated(json.loads(inputs["profile"].read_text()), data)
    path = _write(inputs["root"], "p.json", json.dumps(doc))
    _run_on(["plan", "--profile", str(path)], path.parent / "plan.json")
    _run_on(["simulate", "--plan", str(inputs["plan"]), "--profile", str(path), "--samples", "20"], path.parent / "s")


@FUZZ
@given(data=st.data())
def test_malformed_plans(inputs, data):
    doc = _mutated(json.loads(inputs["plan"].read_text()), data)
    path = _write(inputs["root"], "plan.json", json.dumps(doc))
    _run_on(
        ["simulate", "--plan", str(path), "--profile", str(inputs["profile"]), "--samples", "20"], path.parent / "s"
    )


@FUZZ
@given(data=st.data())
def test_malformed_sim_configs(inputs, data):
    base = json.loads((inputs["sim"] / "config.json").read_text())["sim_config"]
    doc = _mutated(base, data)
    path = _write(inputs["root"], "sim_config.json", json.dumps(doc))
    argv = ["simulate", "--plan", str(inputs["plan"]), "--profile", str(inputs["profile"]), "--samples", "20"]
    _run_on([*argv, "--sim-config", str(path)], path.parent / "s")


CSV_CELL = st.one_of(st.sampled_from(["t", "time", "", "nan", "inf", "-1", "1e308", "1e-320", "x", "0"]), VALUE)


@FUZZ
@given(rows=st.lists(st.lists(CSV_CELL, min_size=0, max_size=3), max_size=40), header=st.booleans())
def test_malformed_arrival_traces(inputs, rows, header):
    lines = (["t"] if header else []) + [",".join(row) for row in rows]
    path = _write(inputs["root"], "arrivals.csv", "\n".join(lines) + "\n")
    argv = ["simulate", "--plan", str(inputs["plan"]), "--profile", str(inputs["profile"]), "--samples", "20"]
    _run_on([*argv, "--arrival", f"trace:{path}"], path.parent / "s")


@settings(FUZZ, max_examples=max(5, EXAMPLES // 3))
@given(data=st.data())
def test_malformed_op_traces_for_the_replay(inputs, data):
    """The replay executor follows a trace file (`run --plan P --trace T`): a corrupted row is
    one line, not a traceback."""
    doc = _mutated(trace_rows(inputs["sim"]), data)
    path = _write(inputs["root"], "trace.jsonl", "".join(json.dumps(row) + "\n" for row in doc))
    argv = ["run", "--plan", str(inputs["plan"]), "--profile", str(inputs["profile"]), "--samples", "30"]
    _run_on([*argv, "--trace", str(path), "--eval-every", "0"], path.parent / "r")
