"""analysis.compare and analysis.compare_table on hand-written run folders: every number against
a hand computation, the refusals naming the field, the Pareto front."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from analysis.compare import Run, Stat, comparison_rows, load_runs, run_values
from analysis.compare_table import comparison_markdown, write_comparison_csv
from analysis.pareto import non_dominated
from planner.errors import FerretError

LN2 = math.log(2)


def write_run(folder: Path, framework: str, seed: int, online: float, test: float, memory: int, **extra: Any) -> Path:
    """A run folder as `ferret run` writes it, with the numbers given (samples 100, all trained)."""
    config = {"framework": framework, "seed": seed, "out": str(folder), "dataset": "digits", "stream": "iid"}
    config.update(extra.pop("config", {}))
    summary = {
        "framework": framework, "algorithm": "vanilla", "dataset": "digits", "stream": "iid", "seed": seed,
        "samples": 100, "trained": 100, "skipped": 0, "online_accuracy": online, "test_accuracy": test,
        "a_auc": test, "forgetting": None, "measured_peak_memory_bytes": memory, "train_flops": 3e8,
    }  # fmt: skip
    summary.update(extra)
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.csv").write_text(f"samples,time_s,online_accuracy,test_accuracy,trained\n50,1,{online},,50\n")
    return folder


@pytest.fixture
def table_runs(tmp_path: Path) -> list[Run]:
    """Oracle and 1-Skip on seeds 0–2 (1-Skip's folders out of seed order), Ferret M+ on the same."""
    folders = [
        write_run(tmp_path / "oracle-s0", "oracle", 0, 60.0, 50.0, 2000),
        write_run(tmp_path / "oracle-s1", "oracle", 1, 75.0, 52.0, 2000),
        write_run(tmp_path / "oracle-s2", "oracle", 2, 80.0, 54.0, 2000),
        write_run(tmp_path / "skip-s2", "1-skip", 2, 30.0, 30.0, 1000, trained=10, skipped=90),
        write_run(tmp_path / "skip-s0", "1-skip", 0, 10.0, 30.0, 1000, trained=12, skipped=88),
        write_run(tmp_path / "skip-s1", "1-skip", 1, 20.0, 30.0, 1000, trained=14, skipped=86),
    ]
    plan = {"framework": "pipeline", "plan": "/p/plan-max.json"}
    for seed, staleness in enumerate((2.0, 4.0, 3.0)):
        pipeline = {"mode": "replay", "dropped": 5, "skipped": 8, "trained": 92, "mean_staleness": staleness}
        f4 = 3000 + 300 * seed
        ferret = tmp_path / f"ferret-s{seed}"
        folders.append(
            write_run(
                ferret, "ferret", seed, 40.0 + seed, 45.0, 4000, predicted_memory_bytes=f4, config=plan, **pipeline
            )
        )
    return load_runs(folders)


def test_grouped_table_equals_a_hand_computation(table_runs):
    rows = comparison_rows(table_runs, group_by_seed=True)
    assert [r.label for r in rows] == ["oracle", "1-skip", "ferret"]
    assert [r.baseline for r in rows] == [False, True, False]
    oracle, skip, ferret = (r.stats for r in rows)
    mean = (60 + 75 + 80) / 3
    assert oracle["online_accuracy"].mean == pytest.approx(mean)
    assert oracle["online_accuracy"].std == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in (60, 75, 80)) / 2))
    assert oracle["online_accuracy"].n == 3
    # oagm per seed, against the 1-Skip run of the same seed: (60−10, 75−20, 80−30) − ln(2000/1000)
    assert oracle["oagm"].mean == pytest.approx(155 / 3 - LN2)
    assert oracle["oagm"].std == pytest.approx(math.sqrt(75 / 9))
    assert oracle["tagm"].mean == pytest.approx(22 - LN2) and oracle["tagm"].std == pytest.approx(2.0)
    assert skip["oagm"].mean == 0 and skip["oagm"].std == 0
    assert ferret["oagm"].mean == pytest.approx(((40 - 10) + (41 - 20) + (42 - 30)) / 3 - math.log(4000 / 1000))
    assert skip["trained_share"].mean == pytest.approx(0.12) and skip["drop_rate"].mean == pytest.approx(0.88)
    assert oracle["mean_staleness"].mean == 0 and oracle["predicted_memory_bytes"].n == 0
    assert ferret["drop_rate"].mean == pytest.approx(0.05)  # dropped, not the 8 untrained
    assert ferret["trained_share"].mean == pytest.approx(0.92)
    assert ferret["mean_staleness"].mean == pytest.approx(3.0) and ferret["mean_staleness"].std == pytest.approx(1.0)
    assert ferret["predicted_memory_bytes"].mean == pytest.approx(3300)
    assert oracle["forgetting"].n == 0  # null in every summary


def test_ungrouped_rows_are_the_runs_themselves(table_runs):
    rows = comparison_rows(table_runs)
    assert [r.label for r in rows] == [r.name for r in table_runs]
    oracle_s1 = rows[1].stats
    assert oracle_s1["online_accuracy"].mean == 75.0 and oracle_s1["online_accuracy"].n == 1
    assert math.isnan(oracle_s1["online_accuracy"].std)
    assert oracle_s1["oagm"].mean == pytest.approx(55 - LN2)
    assert [r.baseline for r in rows] == [False] * 3 + [True] * 3 + [False] * 3


def test_markdown_and_csv_carry_the_same_numbers(table_runs, tmp_path):
    rows = comparison_rows(table_runs, group_by_seed=True)
    table = comparison_markdown(rows, grouped=True).splitlines()
    assert table[0].startswith("| configuration | seeds | online acc % | test acc % |")
    assert "F4 memory MiB" in table[0] and "forgetting" not in table[0]  # no row has a forgetting value
    assert table[2].startswith(f"| oracle | 3 | 71.67 ± {math.sqrt(325 / 3):.2f} | 52.00 ± 2.00 |")
    assert table[3].startswith("| 1-skip (baseline) | 3 | 20.00 ± 10.00 |")
    write_comparison_csv(tmp_path / "c.csv", rows)
    with (tmp_path / "c.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert lines[0]["seeds"] == "0 1 2" and lines[0]["n"] == "3" and lines[0]["runs"] == "oracle-s0;oracle-s1;oracle-s2"
    assert float(lines[0]["oagm"]) == pytest.approx(155 / 3 - LN2)
    assert float(lines[2]["predicted_memory_bytes"]) == 3300 and lines[0]["predicted_memory_bytes"] == ""
    assert [line["baseline"] for line in lines] == ["false", "true", "false"]


def test_configurations_are_named_by_what_tells_them_apart(tmp_path):
    folders = []
    for seed in (0, 1):
        for plan in ("max", "min"):
            config = {"framework": "pipeline", "plan": f"/x/plan-{plan}.json"}
            folders.append(write_run(tmp_path / f"{plan}-{seed}", "ferret", seed, 50.0, 50.0, 1000, config=config))
    rows = comparison_rows(load_runs(folders), group_by_seed=True)
    assert [r.label for r in rows] == ["ferret plan=plan-max.json", "ferret plan=plan-min.json"]
    assert all(r.seeds == [0, 1] for r in rows) and not any(r.baseline for r in rows)
    assert all(r.stats["oagm"].n == 0 for r in rows)  # no 1-skip run: no baseline
    assert "oagm" not in comparison_markdown(rows, grouped=True)


def test_an_explicit_baseline_replaces_one_skip(table_runs):
    oracle_runs = table_runs[:3]
    rows = comparison_rows(table_runs, group_by_seed=True, baseline=oracle_runs[0])
    assert [r.baseline for r in rows] == [True, False, False]
    assert rows[1].stats["oagm"].mean == pytest.approx(-155 / 3 + LN2)


def _pairs(tmp_path: Path, second: dict[str, Any], seed: int = 0) -> list[Run]:
    a = write_run(tmp_path / "a", "oracle", 0, 50.0, 50.0, 1000)
    b = write_run(tmp_path / "b", "1-skip", seed, 20.0, 20.0, 1000, **second)
    return load_runs([a, b])


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"dataset": "synthetic"}, "data set differs (a: digits; b: synthetic)"),
        ({"config": {"stream_option": [["tasks", 5]]}}, "stream differs (a: iid; b: iid (tasks=5))"),
        ({"config": {"dataset_option": {"classes": 5}}}, "data set differs (a: digits; b: digits (classes=5))"),
        ({"samples": 200}, "sample count differs (a: 100; b: 200)"),
    ],
)
def test_incomparable_runs_are_refused_naming_the_field(tmp_path, second, message):
    runs = _pairs(tmp_path, second)
    with pytest.raises(FerretError, match="runs are not comparable: ") as error:
        comparison_rows(runs)
    assert message in str(error.value) and "--force" in str(error.value)
    assert len(comparison_rows(runs, force=True)) == 2


def test_different_seed_sets_and_repeated_seeds_are_refused(tmp_path):
    runs = _pairs(tmp_path, {}, seed=1)
    with pytest.raises(FerretError, match=r"seed set differs \(a: seed 0; b: seed 1\)"):
        comparison_rows(runs, group_by_seed=True)
    rows = comparison_rows(runs, force=True)
    assert rows[0].stats["oagm"].n == 0  # no 1-Skip run of seed 0 to pair with
    again = [write_run(tmp_path / name, "oracle", 0, 50.0, 50.0, 1000) for name in ("c", "d")]
    with pytest.raises(FerretError, match="c and d are the same configuration with the same seed 0"):
        comparison_rows(load_runs(again))


def test_two_one_skip_configurations_need_an_explicit_baseline(tmp_path):
    a = write_run(tmp_path / "a", "1-skip", 0, 20.0, 20.0, 1000, config={"lr": 0.1})
    b = write_run(tmp_path / "b", "1-skip", 0, 20.0, 20.0, 1000, config={"lr": 0.01})
    runs = load_runs([a, b])
    with pytest.raises(FerretError, match="2 1-skip configurations could be the baseline"):
        comparison_rows(runs)
    assert [r.baseline for r in comparison_rows(runs, baseline=runs[1])] == [False, True]


def _broken(folder: Path, what: str) -> None:
    if what == "no summary":
        (folder / "summary.json").unlink()
    elif what == "corrupt summary":
        (folder / "summary.json").write_text('{"online_accuracy": 5')
    elif what == "sim summary":
        (folder / "summary.json").write_text(json.dumps({"adaptation_rate": 3.0, "peak_memory_bytes": 10}))
    elif what == "no metrics":
        (folder / "metrics.csv").unlink()
    elif what == "corrupt metrics":
        (folder / "metrics.csv").write_text("samples,online_accuracy\n50,high\n")


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("no summary", "run summary not found: {f}/summary.json"),
        ("corrupt summary", "run summary {f}/summary.json is not valid JSON"),
        ("sim summary", "{f}/summary.json is not a ferret run summary (no 'online_accuracy'); is {f} a `ferret run`"),
        ("no metrics", "run metrics not found: {f}/metrics.csv"),
        ("corrupt metrics", "{f}/metrics.csv is not a ferret metrics.csv"),
    ],
)
def test_a_broken_run_folder_is_one_clear_error(tmp_path, what, message):
    folder = write_run(tmp_path / "r", "oracle", 0, 50.0, 50.0, 1000)
    _broken(folder, what)
    with pytest.raises(FerretError) as error:
        load_runs([folder])
    assert message.format(f=folder) in str(error.value) and "\n" not in str(error.value)


def test_a_folder_given_twice_or_absent_is_refused(tmp_path):
    folder = write_run(tmp_path / "r", "oracle", 0, 50.0, 50.0, 1000)
    with pytest.raises(FerretError, match="run folder given twice"):
        load_runs([folder, tmp_path / "." / "r"])
    with pytest.raises(FerretError, match="run folder not found"):
        load_runs([tmp_path / "nothing"])


def test_same_folder_names_under_different_parents_keep_their_paths(tmp_path):
    a = write_run(tmp_path / "x" / "run", "oracle", 0, 50.0, 50.0, 1000)
    b = write_run(tmp_path / "y" / "run", "1-skip", 0, 20.0, 20.0, 1000)
    assert [r.name for r in load_runs([a, b])] == [str(a), str(b)]


def test_the_pareto_front_is_exactly_the_non_dominated_points():
    points = [(1, 10), (2, 20), (2, 15), (3, 20), (0.5, 5), (math.nan, 100), (4, 25), (1, 10)]
    assert non_dominated(points) == [True, True, False, False, True, False, True, True]


def test_rows_on_the_front_are_the_undominated_runs(tmp_path):
    specs = [("a", 40.0, 1000), ("b", 60.0, 2000), ("c", 50.0, 2000), ("d", 60.0, 3000), ("e", 70.0, 8000)]
    folders = [write_run(tmp_path / n, n, 0, acc, acc, memory) for n, acc, memory in specs]
    rows = comparison_rows(load_runs(folders))
    assert [r.label for r in rows if r.pareto] == ["a", "b", "e"]


def test_run_values_of_a_sequential_run_without_baseline():
    summary = {"samples": 200, "trained": 50, "skipped": 150, "online_accuracy": 1.0, "train_flops": 2.0}
    values = run_values(summary, None)
    assert values["trained_share"] == 0.25 and values["drop_rate"] == 0.75 and values["mean_staleness"] == 0.0
    assert values["oagm"] is None and values["test_accuracy"] is None


def test_stat_formats_one_value_without_a_spread():
    assert Stat.of([1.0, None, math.nan]).format() == "1.00"
    assert Stat.of([1.0, 3.0]).format(".1f") == "2.0 ± 1.4"
    assert Stat.of([]).format() == "—"
    assert Stat.of([2**20, 3 * 2**20]).format(".3f", 2**20) == "2.000 ± 1.414"
