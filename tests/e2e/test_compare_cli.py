"""`ferret run` ×5 then `ferret compare` end to end: the table, the files, the refusals as one line."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from executor.models import build_model
from planner.profile import LayerProfile, ModelProfile

STREAM = ["--dataset", "digits", "--stream", "class-incremental", "--stream-option", "tasks=2", "--eval-every", "50"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Oracle and 1-Skip on seeds 0 and 1, and Ferret's M+ plan on seed 0, 150 samples each."""
    folder = tmp_path_factory.mktemp("runs")
    model = build_model("mnistnet", (1, 8, 8), 10)
    layers = tuple(LayerProfile(name, 1e-3, 2e-3, 1000, 4000, 1000) for name in model.layer_names)
    profile = folder / "profile.json"
    ModelProfile("mnistnet", layers, source="synthetic").save(profile)
    assert main(["plan", "--profile", str(profile), "--budget", "max", "--out", str(folder / "plan.json")]) == 0
    out = {}
    for name, extra in (
        ("oracle-0", ["--framework", "oracle", "--seed", "0"]),
        ("oracle-1", ["--framework", "oracle", "--seed", "1"]),
        ("skip-0", ["--framework", "1-skip", "--seed", "0"]),
        ("skip-1", ["--framework", "1-skip", "--seed", "1"]),
        ("ferret-0", ["--plan", str(folder / "plan.json"), "--seed", "0"]),
        ("short", ["--framework", "oracle", "--samples", "100"]),
    ):
        samples = [] if name == "short" else ["--samples", "150"]
        args = ["run", *STREAM, *samples, "--profile", str(profile), *extra, "--out", str(folder / name)]
        assert main(args) == 0
        out[name] = folder / name
    return out


def compare(*args: object) -> int:
    return main(["compare", *map(str, args)])


def test_compare_groups_seeds_writes_everything_and_prints_the_table(runs, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "cmp"
    folders = [runs[n] for n in ("oracle-0", "skip-0", "oracle-1", "skip-1")]
    assert compare(*folders, "--group-by", "seed", "--out", out) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("| configuration | seeds | online acc % |")
    assert "| 1-skip (baseline) | 2 |" in printed and "oagm/tagm against 1-skip" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["comparison.md", "comparison.csv", "accuracy.png", "memory_vs_accuracy.png", "summary.json", "config.json"]
    )
    summaries = {n: json.loads((runs[n] / "summary.json").read_text()) for n in runs}
    with (out / "comparison.csv").open() as f:
        rows = {row["label"]: row for row in csv.DictReader(f)}
    oracle = [summaries[n]["online_accuracy"] for n in ("oracle-0", "oracle-1")]
    assert float(rows["oracle"]["online_accuracy"]) == pytest.approx(statistics.fmean(oracle))
    assert float(rows["oracle"]["online_accuracy_std"]) == pytest.approx(statistics.stdev(oracle))
    assert rows["oracle"]["n"] == "2" and rows["oracle"]["seeds"] == "0 1"
    assert float(rows["1-skip"]["oagm"]) == 0.0
    assert "| oracle | 2 |" in (out / "comparison.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 4 and summary["baseline"] == "1-skip" and summary["grouped_by"] == "seed"
    for figure in ("accuracy.png", "memory_vs_accuracy.png"):
        import matplotlib.image

        pixels = matplotlib.image.imread(out / figure)
        assert pixels.shape[0] > 100 and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10


def test_a_pipeline_run_beside_sequential_ones_per_run(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare(runs["oracle-0"], runs["skip-0"], runs["ferret-0"], "--out", out) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | seed |") and "F4 memory MiB" in table[0] and "staleness" in table[0]
    ferret = next(line for line in table if line.startswith("| ferret-0 | 0 |"))
    summary = json.loads((runs["ferret-0"] / "summary.json").read_text())
    assert f"{summary['predicted_memory_bytes'] / 2**20:.3f}" in ferret
    assert f"{summary['mean_staleness']:.2f}" in ferret


def test_an_explicit_baseline_outside_the_list_joins_the_table(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare(runs["skip-0"], "--baseline", runs["oracle-0"], "--out", out) == 0
    printed = capsys.readouterr().out
    assert "| oracle-0 (baseline) | 0 |" in printed and "oagm/tagm against oracle-0" in printed


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ferret compare: error: "), err
    return err


def test_incomparable_runs_are_refused_with_the_field_and_nothing_written(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare(runs["oracle-0"], runs["short"], "--out", out) == 2
    assert "sample count differs (oracle-0: 150; short: 100)" in one_line_error(capsys)
    assert not out.exists()
    assert compare(runs["oracle-0"], runs["skip-0"], runs["skip-1"], "--out", out) == 2
    assert "seed set differs (oracle-0: seed 0; 1-skip: seeds 0, 1)" in one_line_error(capsys)
    assert compare(runs["oracle-0"], runs["short"], "--force", "--out", out) == 0
    assert json.loads((out / "summary.json").read_text())["forced"] is True


@pytest.mark.parametrize(("damage", "message"), [("missing", "run summary not found"), ("corrupt", "not valid JSON")])
def test_a_missing_or_corrupt_summary_is_one_line(runs, tmp_path, capsys, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(runs["skip-0"], broken)
    if damage == "missing":
        (broken / "summary.json").unlink()
    else:
        (broken / "summary.json").write_text("{ not json")
    assert compare(runs["oracle-0"], broken, "--out", tmp_path / "cmp") == 2
    assert message in one_line_error(capsys) and not (tmp_path / "cmp").exists()


def test_out_may_not_be_a_run_folder(runs, tmp_path, capsys):
    before = (runs["oracle-0"] / "summary.json").read_bytes()
    assert compare(runs["oracle-0"], runs["skip-0"], "--out", runs["oracle-0"]) == 2
    assert "is also an input" in one_line_error(capsys)
    assert compare(runs["oracle-0"], runs["skip-0"], "--out", runs["oracle-1"]) == 2
    assert "is a run folder" in one_line_error(capsys)
    assert (runs["oracle-0"] / "summary.json").read_bytes() == before
