"""Issue 13, class by class: each test failed before the mechanism that closes its class.

1 outputs never clobber what the user owns · 2 an output folder holds one run · 3 numbers are
held to what they measure · 4 work is bounded up front · 5 artifacts say what they were made
for and consumers check it · 6 a run can be repeated exactly · 7 one line, never a traceback ·
8 help that tells the truth.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.cli import as_typed, build_parser, discover_commands, main
from planner.errors import FerretError
from planner.fileio import atomic_dir

REPO = Path(__file__).resolve().parents[2]


def ferret(capsys, *argv: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, *argv: object) -> str:
    """The one-line error of a call that must be refused."""
    code, _, err = ferret(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """p.json (mnistnet for digits' 8×8), plan.json, mlp.json and its plan, a simulation folder."""
    root = tmp_path_factory.mktemp("inputs")
    roofline = ["--device", "roofline:h100"]
    for argv in (
        ["profile", "--model", "mnistnet", "--input-shape", "1,8,8", *roofline, "--out", root / "p.json"],
        ["profile", "--model", "mnistnet", *roofline, "--out", root / "p28.json"],
        ["profile", "--model", "mlp", "--input-shape", "64", *roofline, "--out", root / "mlp.json"],
        ["plan", "--profile", root / "p.json", "--out", root / "plan.json"],
        ["plan", "--profile", root / "mlp.json", "--out", root / "plan_mlp.json"],
        [
            "simulate",
            "--plan",
            root / "plan.json",
            "--profile",
            root / "p.json",
            "--samples",
            "50",
            "--out",
            root / "sim",
        ],
    ):
        assert main([str(a) for a in argv]) == 0
    return root


def simulate_args(inputs: Path, *extra: object) -> list[object]:
    return ["simulate", "--plan", inputs / "plan.json", "--profile", inputs / "p.json", "--samples", "30", *extra]


# ----------------------------------------------------------------------------- 1: nothing clobbered


def test_1_an_output_that_is_an_input_is_refused(inputs, tmp_path, capsys):
    profile = tmp_path / "p.json"
    profile.write_bytes((inputs / "p.json").read_bytes())
    before = profile.read_bytes()
    assert "is also an input" in refused(capsys, "plan", "--profile", profile, "--out", profile)
    sibling = tmp_path / "x.summary.json"  # plan --out x.json writes x.summary.json
    sibling.write_bytes(before)
    assert "is also an input" in refused(capsys, "plan", "--profile", sibling, "--out", tmp_path / "x.json")
    assert profile.read_bytes() == before and sibling.read_bytes() == before


def test_1_a_folder_output_may_not_hold_an_input_or_a_users_files(inputs, tmp_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "plan.json").write_bytes((inputs / "plan.json").read_bytes())
    args = ["simulate", "--plan", folder / "plan.json", "--profile", inputs / "p.json", "--out", folder]
    assert "holds the input" in refused(capsys, *args)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("years of work")
    assert "ferret did not write" in refused(capsys, *simulate_args(inputs, "--out", notes))
    assert (notes / "thesis.txt").read_text() == "years of work" and len(list(notes.iterdir())) == 1


def test_1_a_name_that_matches_a_file_is_not_taken_for_an_input(tmp_path, capsys, monkeypatch):
    """`--model mlp --out mlp`, run twice: the model's name is no input, so the rerun may
    replace the profile it wrote the first time."""
    monkeypatch.chdir(tmp_path)
    argv = ["profile", "--model", "mlp", "--device", "roofline:h100", "--out", "mlp"]
    assert ferret(capsys, *argv)[0] == 0
    assert ferret(capsys, *argv)[0] == 0


# ----------------------------------------------------------------------------- 2: one run per folder


def test_2_a_second_run_replaces_the_folder_as_a_whole(inputs, tmp_path, capsys):
    out = tmp_path / "sim"
    assert ferret(capsys, *simulate_args(inputs, "--out", out))[0] == 0
    assert (out / "trace.ftrace").exists()
    assert ferret(capsys, *simulate_args(inputs, "--trace-format", "csv", "--out", out))[0] == 0
    assert (out / "trace.csv").exists() and not (out / "trace.ftrace").exists()
    config = json.loads((out / "config.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(config["output_files"])


def test_2_a_file_added_to_an_output_folder_is_not_lost_silently(inputs, tmp_path, capsys):
    out = tmp_path / "sim"
    assert ferret(capsys, *simulate_args(inputs, "--out", out))[0] == 0
    (out / "my-notes.md").write_text("keep")
    assert "my-notes.md, which ferret did not write" in refused(capsys, *simulate_args(inputs, "--out", out))


def test_2_a_killed_writers_staging_is_removed_by_the_next_write(inputs, tmp_path, capsys):
    out = tmp_path / "sim"
    stale = tmp_path / ".sim.k1ll3d.partial"
    stale.mkdir()
    (stale / "trace.jsonl").write_text("{}\n")
    assert ferret(capsys, *simulate_args(inputs, "--out", out))[0] == 0
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["sim"]


def test_2_a_second_writer_of_a_folder_fails_at_once(tmp_path):
    out = tmp_path / "out"
    code = f"from planner.fileio import atomic_dir\nwith atomic_dir({str(out)!r}): pass"
    with atomic_dir(out) as stage:
        (stage / "a.txt").write_text("first")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
        assert proc.returncode != 0 and "is being written by another ferret (pid" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the lock file went with the writer


def test_2_a_folder_is_replaced_in_one_rename_and_never_written_twice_at_once(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as stage:
        (stage / "config.json").write_text(json.dumps({"ferret_version": "x"}))
        (stage / "old.txt").write_text("old")
    inode = out.stat().st_ino
    with atomic_dir(out) as stage:
        (stage / "config.json").write_text(json.dumps({"ferret_version": "x"}))
        with pytest.raises(FerretError, match="is being written by another ferret"), atomic_dir(out):
            pass
    assert sorted(p.name for p in out.iterdir()) == ["config.json"] and out.stat().st_ino != inode


# ----------------------------------------------------------------------------- 3: numbers with meaning


def _edited(src: Path, dest: Path, change) -> Path:
    doc = json.loads(src.read_text())
    change(doc)
    dest.write_text(json.dumps(doc))
    return dest


@pytest.mark.parametrize(
    ("kind", "change", "needle"),
    [
        ("profile", lambda d: [x.update(param_bytes=2**62) for x in d["layers"][:2]], "beyond"),
        ("profile", lambda d: [x.update(t_fwd_s=5e-324) for x in d["layers"]], "below 1e-12 s"),
        ("plan", lambda d: d["placement"][0].__setitem__(0, 10**8), "names device 100000000"),
        ("plan", lambda d: d["workers"][0]["accumulation"].__setitem__(0, 10**18), "accumulation[0] must be in"),
        ("plan", lambda d: d.update(arrival_interval_s=1e-320), "a positive time in [1e-12 s"),
        ("plan", lambda d: d.update(budget_bytes=10**30), "1 PiB"),
    ],
)
def test_3_json_numbers_beyond_what_they_measure_are_one_line(inputs, tmp_path, capsys, kind, change, needle):
    profile, plan = inputs / "p.json", inputs / "plan.json"
    if kind == "profile":
        profile = _edited(profile, tmp_path / "bad.json", change)
    else:
        plan = _edited(plan, tmp_path / "bad.json", change)
    args = ["simulate", "--plan", plan, "--profile", profile, "--samples", "20", "--out", tmp_path / "s"]
    assert needle in refused(capsys, *args)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--seed", "-5"], "seed"),
        (["--time-scale", "1e300"], "--time-scale"),
        (["--optimizer-state-ratio", "1e300"], "--optimizer-state-ratio"),
        (["--jitter", "40"], "jitter_sigma"),
        (["--link-bandwidth", "1e-300"], "1 B/s"),
        (["--update-time", "1e12"], "31 years"),
    ],
)
def test_3_flags_beyond_what_they_measure_are_one_line(inputs, tmp_path, capsys, extra, needle):
    assert needle in refused(capsys, *simulate_args(inputs, *extra, "--out", tmp_path / "s"))


def test_3_a_sim_config_file_is_held_to_the_same_bounds(inputs, tmp_path, capsys):
    config = tmp_path / "cfg.json"
    config.write_text('{"update_s": 1e308}')
    assert "update_s" in refused(capsys, *simulate_args(inputs, "--sim-config", config, "--out", tmp_path / "s"))
    config.write_text('{"update_s": NaN}')
    assert "JSON has no NaN" in refused(capsys, *simulate_args(inputs, "--sim-config", config, "--out", tmp_path / "s"))


# ----------------------------------------------------------------------------- 4: bounded work


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["whatif", "--budgets", "1B:1GiB:+1B"], "--max-points"),
        (["whatif", "--budgets", "1MiB:1TiB:x1.0000001"], "--max-points"),
        (["whatif", "--budgets", "auto:1000000000"], "--max-points"),
        (["whatif", "--budgets", "1MiB", "--samples", "100000000"], "--max-events"),
        (["plan", "--arrival-interval", "1ns"], "--max-workers"),
        (["simulate", "--samples", "2000000000"], "--max-events"),
    ],
)
def test_4_unbounded_work_is_refused_at_once_naming_the_flag(inputs, tmp_path, capsys, argv, flag):
    command, *extra = argv
    given = ["--plan", inputs / "plan.json"] if command == "simulate" else []
    started = time.perf_counter()
    line = refused(capsys, command, *given, "--profile", inputs / "p.json", *extra, "--out", tmp_path / "o.json")
    assert flag in line and time.perf_counter() - started < 20


def test_4_raising_the_limit_lets_the_work_run(inputs, tmp_path, capsys):
    args = simulate_args(inputs, "--out", tmp_path / "s")
    assert "--max-events" in refused(capsys, *args, "--max-events", "100")
    assert ferret(capsys, *args, "--max-events", "100000")[0] == 0


def test_4_models_and_data_sets_too_large_for_memory_are_refused_before_allocation(tmp_path, capsys):
    line = refused(capsys, "profile", "--model", "mlp", "--input-shape", "2000000000", "--out", tmp_path / "p.json")
    assert "--max-memory" in line
    args = ["run", "--dataset", "synthetic", "--dataset-option", "train_size=2000000000", "--out", tmp_path / "r"]
    assert "--max-memory" in refused(capsys, *args)


# ----------------------------------------------------------------------------- 5: provenance


def test_5_artifacts_record_what_they_were_made_for(inputs):
    profile = json.loads((inputs / "p.json").read_text())
    plan = json.loads((inputs / "plan.json").read_text())
    summary = json.loads((inputs / "sim" / "summary.json").read_text())
    made_for = {"model": "mnistnet", "input_shape": [1, 8, 8], "num_classes": 10}
    assert profile["provenance"] == made_for
    assert plan["provenance"].items() >= {**made_for, "model": "mnistnet"}.items()
    assert summary["provenance"]["structure"] == plan["provenance"]["structure"]
    assert summary["provenance"]["samples"] == 50


def test_5_a_plan_of_another_model_is_refused_unless_forced(inputs, tmp_path, capsys):
    args = ["simulate", "--plan", inputs / "plan_mlp.json", "--profile", inputs / "p.json", "--samples", "20"]
    assert "model mlp, not mnistnet" in refused(capsys, *args, "--out", tmp_path / "s")
    code, out, _ = ferret(capsys, *args, "--force", "--out", tmp_path / "s")
    assert code == 0 and "note: --force" in out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--profile", "{inputs}/p28.json"], "input shape 1×28×28, not 1×8×8"),
        (["--plan", "{inputs}/plan_mlp.json", "--profile", "{inputs}/p.json"], "model mlp, not mnistnet"),
        (["--profile", "{inputs}/p.json", "--device", "roofline:h100"], "give one of them"),
    ],
)
def test_5_run_refuses_a_profile_or_plan_made_for_another_model_or_input(inputs, tmp_path, capsys, extra, needle):
    extra = [e.format(inputs=inputs) for e in extra]
    assert needle in refused(capsys, "run", *extra, "--samples", "20", "--out", tmp_path / "r")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- 6: determinism


def test_6_repeat_of_reproduces_a_measured_run_exactly(tmp_path, capsys):
    first, again = tmp_path / "first", tmp_path / "again"
    args = ["run", "--samples", "40", "--cost-batch", "4", "--eval-every", "10", "--stream", "class-incremental"]
    code, out, _ = ferret(capsys, *args, "--stream-option", "tasks=2", "--out", first)
    assert code == 0 and "step times measured now" in out
    assert (first / "profile.json").is_file() and (first / "profile.batch4.json").is_file()
    assert ferret(capsys, "run", "--repeat-of", first, "--out", again)[0] == 0
    ignore = {"wall_s", "run_wall_s"}
    a, b = (json.loads((f / "summary.json").read_text()) for f in (first, again))
    assert {k: v for k, v in a.items() if k not in ignore} == {k: v for k, v in b.items() if k not in ignore}
    assert (first / "metrics.csv").read_bytes() == (again / "metrics.csv").read_bytes()
    assert "--repeat-of takes every setting" in refused(
        capsys, "run", "--repeat-of", first, "--seed", "3", "--out", tmp_path / "x"
    )


# ----------------------------------------------------------------------------- 7: one line


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--stream", "class-incremental", "--stream-option", "tasks=abc"], "option tasks must be an integer"),
        (["--dataset-option", "test_fraction=1.5"], "test_fraction must lie in (0, 1)"),
        (["--device", "cuda"], "CUDA is not available"),
    ],
)
def test_7_run_errors_are_one_line(inputs, tmp_path, capsys, argv, needle):
    args = ["run", "--profile", inputs / "p.json", *argv, "--samples", "20", "--out", tmp_path / "r"]
    if "cuda" in argv:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        args.remove("--profile")
        args.remove(inputs / "p.json")
    assert needle in refused(capsys, *args)


def test_7_file_system_errors_are_one_line(inputs, tmp_path, capsys):
    trace = tmp_path / "h.csv"
    trace.write_text("t\n")
    assert "header but no times" in refused(
        capsys, *simulate_args(inputs, "--arrival", f"trace:{trace}", "--out", tmp_path / "s")
    )
    assert "too long" in refused(capsys, *simulate_args(inputs, "--out", tmp_path / ("x" * 300)))
    (tmp_path / "f.txt").write_text("x")
    line = refused(capsys, "plan", "--profile", inputs / "p.json", "--out", tmp_path / "f.txt" / "plan.json")
    assert "is a file, not a folder" in line


def test_7_a_failed_output_removes_the_folders_it_made(tmp_path):
    with pytest.raises(FerretError, match="boom"), atomic_dir(tmp_path / "x" / "y"):
        raise FerretError("boom")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- 8: help


def test_8_version(capsys):
    from importlib import metadata

    code, out, _ = ferret(capsys, "--version")
    assert code == 0 and out.strip() == f"ferret {metadata.version('ferret-ocl')}"


def _parsers():
    parser = build_parser(discover_commands())
    sub = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    return {name: p.populated() for name, p in sub.choices.items()}


def test_8_help_cites_nothing_a_user_does_not_have_and_every_default_passes_its_own_check():
    for name, parser in _parsers().items():
        text = parser.format_help()
        assert "SPEC" not in text, name
        for action in parser._actions:
            default = action.default
            if action.type is None or default is None or isinstance(default, bool | list) or default == "==SUPPRESS==":
                continue
            action.type(as_typed(default))  # an argparse error here is a default the flag itself refuses


def test_8_the_dataset_option_example_in_help_runs(tmp_path, capsys):
    import re

    text = " ".join(_parsers()["run"].format_help().split())
    example = re.search(r"e\.g\. (\S+=\S+) for synthetic", text)
    assert example is not None
    args = ["run", "--dataset", "synthetic", "--dataset-option", example.group(1), "--samples", "20"]
    assert ferret(capsys, *args, "--device", "roofline:h100", "--out", tmp_path / "r")[0] == 0
