"""`ferret whatif` and the sweep library under it."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import astuple, replace

import pytest

from analysis.cli import main
from analysis.whatif import WhatIfJob, WhatIfRow, mark_pareto, run_job, run_sweep, tqdm_progress
from planner.profile import ModelProfile
from sim import SimConfig, sequential_plan, simulate
from tests.sim.builders import balanced_profile

PROFILE = balanced_profile(3, t_fwd=1e-3, t_bwd=2e-3)  # whole model: 9 ms per datum
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _job(strategy="1-skip", budget=1 << 20, interval=4e-3, samples=300, **kw):
    return WhatIfJob(strategy, budget, interval, 1.0, samples, "fixed", 0, SimConfig(exclusive_devices=True), **kw)


def test_a_sequential_baseline_point_is_its_plan_simulated():
    row = run_job(_job(), PROFILE)
    direct = simulate(sequential_plan(PROFILE.num_layers, 4e-3, "1-skip"), PROFILE, 300)
    assert row.feasible and row.workers == 1 and row.stages == 1
    assert row.rate == direct.adaptation_rate
    assert row.peak_memory_bytes == direct.peak_memory_bytes == row.predicted_memory_bytes
    assert row.predicted_rate == pytest.approx(row.rate, rel=0.01)
    assert row.drop_rate == direct.drop_rate > 0


def test_a_budget_below_the_footprint_is_infeasible_and_not_simulated():
    row = run_job(_job(budget=1000), PROFILE)
    assert not row.feasible
    assert math.isnan(row.rate) and row.events == 0
    assert row.predicted_memory_bytes > 1000


def _row(strategy, memory, rate, feasible=True, interval=1e-3):
    nan = math.nan
    return WhatIfRow(strategy, 0, interval, feasible, 1, 1, 1, nan, nan, rate, memory, nan, nan, nan, nan, 0, 0.0)


def test_the_pareto_front_keeps_only_undominated_feasible_points_per_interval():
    rows = [
        _row("a", 10, 1.0),
        _row("b", 20, 3.0),
        _row("c", 20, 2.0),  # dominated by b
        _row("d", 30, 3.0),  # dominated by b (same R, more memory)
        _row("e", 5, 99.0, feasible=False),
        _row("f", 40, 2.5, interval=2e-3),  # alone in its interval
    ]
    assert [r.pareto for r in mark_pareto(rows)] == [True, True, False, False, False, True]


def test_parallel_sweep_gives_the_same_rows_as_a_serial_one():
    jobs = [_job(s, b) for s in ("1-skip", "last-n", "random-n") for b in (1000, 1 << 20)]
    serial = run_sweep(jobs, PROFILE, workers=1)
    parallel = run_sweep(jobs, PROFILE, workers=2)

    def comparable(rows):
        return [tuple(None if v != v else v for v in astuple(replace(r, wall_s=0.0))) for r in rows]  # NaN → None

    assert comparable(serial) == comparable(parallel)
    assert [r.feasible for r in serial] == [False, True] * 3


def test_budgets_that_plan_the_same_pipeline_share_one_simulation(monkeypatch):
    import analysis.whatif as whatif

    simulated = []
    real = whatif._simulate_packed
    monkeypatch.setattr(whatif, "_simulate_packed", lambda args: simulated.append(args) or real(args))
    jobs = [_job("1-skip", b) for b in (1 << 20, 2 << 20, 3 << 20)]
    rows = run_sweep(jobs, PROFILE, workers=1)
    assert len(simulated) == 1
    assert [r.budget_bytes for r in rows] == [1 << 20, 2 << 20, 3 << 20]
    assert len({(r.rate, r.peak_memory_bytes, r.events) for r in rows}) == 1


def test_no_progress_bar_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    assert tqdm_progress(True) is None
    assert tqdm_progress(False) is None


@pytest.fixture
def profile_path(tmp_path):
    path = tmp_path / "profile.json"
    PROFILE.save(path)
    return path


def test_cli_writes_table_summary_config_and_three_figures(tmp_path, profile_path, capsys):
    out = tmp_path / "wi"
    code = main(
        ["whatif", "--profile", str(profile_path), "--budgets", "2KiB:256KiB:x2", "--arrival-interval", "4ms",
         "--strategies", "1-skip,last-n,random-n", "--samples", "200", "--jobs", "2", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "drops_vs_memory.png",
        "predicted_vs_simulated.png",
        "rate_vs_memory.png",
        "summary.json",
        "whatif.csv",
    ]
    with (out / "whatif.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 3 * 8
    assert {r["strategy"] for r in table} == {"1-skip", "last-n", "random-n"}
    assert [int(r["budget_bytes"]) for r in table[:8]] == [2048 * 2**k for k in range(8)]
    feasible = [r for r in table if r["feasible"] == "true"]
    assert feasible and all(float(r["peak_memory_bytes"]) <= int(r["budget_bytes"]) for r in feasible)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"] == 24 and summary["pareto"]
    assert set(summary["strategies"]) == {"1-skip", "last-n", "random-n"}
    for name in summary["figures"]:
        blob = (out / name).read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 5000
    config = json.loads((out / "config.json").read_text())
    assert config["devices"] is None and config["sim_config"]["exclusive_devices"] is False
    assert "24 points" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--strategies", "ferret,warp-drive"], "does not know strategy 'warp-drive'"),
        (["--budgets", "1MiB:1KiB:x2"], "stop is below start"),
        (["--devices", "0"], "devices must be an integer in [1, 4096]"),
    ],
)
def test_cli_user_errors_are_one_line_and_write_nothing(tmp_path, profile_path, capsys, extra, needle):
    out = tmp_path / "wi"
    args = ["whatif", "--profile", str(profile_path), "--budgets", "1MiB", "--arrival-interval", "2ms"]
    args += [*extra, "--out", str(out)]
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err
    assert not out.exists()


def test_cli_interval_defaults_to_the_slowest_forward(tmp_path, profile_path):
    out = tmp_path / "wi"
    code = main(["whatif", "--profile", str(profile_path), "--budgets", "1MiB", "--strategies", "ferret",
                 "--samples", "50", "--jobs", "1", "--out", str(out)])  # fmt: skip
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["intervals_s"] == [ModelProfile.load(profile_path).t_fwd.max()]


def test_cli_compares_the_pipeline_strategies_on_a_builtin_profile(tmp_path):
    out = tmp_path / "wi"
    code = main(
        ["whatif", "--profile", "builtin:mnistnet-titan-xp", "--budgets", "4MiB:512MiB:x2", "--arrival-interval",
         "auto", "--decay", "50/s", "--strategies", "ferret,pipedream,pipedream-2bw,gpipe,1f1b", "--samples", "400",
         "--jobs", "2", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    with (out / "whatif.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 5 * 8
    by = {(r["strategy"], int(r["budget_bytes"])): r for r in table}
    assert by[("ferret", 4 << 20)]["feasible"] == "false"  # below the smallest footprint (4.66 MiB)
    roomy = by[("ferret", 512 << 20)]
    assert roomy["feasible"] == "true" and int(roomy["workers"]) == 4 and float(roomy["drop_rate"]) == 0.0
    assert float(roomy["rate"]) > max(float(by[(s, 512 << 20)]["rate"]) for s in ("pipedream", "gpipe", "1f1b"))
    assert float(roomy["rate"]) <= float(roomy["predicted_rate"])  # (F3) counts N/cycle, the stream brings 1/td
    pd = by[("pipedream", 512 << 20)]
    assert float(pd["rate"]) == pytest.approx(float(pd["predicted_rate"]), rel=0.02)
    assert json.loads((out / "config.json").read_text())["arrival_interval"] == pytest.approx(1.8686e-05, rel=1e-3)
    assert any(p["strategy"] == "ferret" for p in json.loads((out / "summary.json").read_text())["pareto"])


def test_auto_budgets_span_the_feasible_range():
    from analysis.whatif import auto_budgets
    from planner.strategies import make_plan, minimal_budget

    budgets = auto_budgets(PROFILE, ["ferret", "gpipe", "1-skip"], 1e-3, 1.0, 6)
    assert len(budgets) == 6 and budgets == sorted(budgets)
    assert budgets[0] == min(minimal_budget(PROFILE, 1e-3, 1.0, strategy=s) for s in ("ferret", "gpipe"))
    assert budgets[-1] == int(1.25 * make_plan("ferret", PROFILE, 1e-3, 1.0).memory_bytes)
    # The smallest budget is feasible for the strategy that reaches it; one byte less is not.
    assert (
        make_plan("ferret", PROFILE, 1e-3, 1.0, budgets[0]).feasible
        or make_plan("gpipe", PROFILE, 1e-3, 1.0, budgets[0]).feasible
    )


def test_cli_auto_budgets(tmp_path, profile_path):
    out = tmp_path / "wi"
    code = main(["whatif", "--profile", str(profile_path), "--budgets", "auto:4", "--strategies", "ferret,pipedream",
                 "--samples", "50", "--jobs", "1", "--out", str(out)])  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader((out / "whatif.csv").open()))
    assert len(rows) == 8
    assert len({r["budget_bytes"] for r in rows}) == 4


def test_fewer_devices_make_ferret_workers_contend():
    # Data every 1 ms against a 9 ms model: Ferret plans several workers. On a device per
    # (worker, stage) they keep up; all on one device, they queue and data drop.
    job = replace(_job("ferret", budget=64 << 20, interval=1e-3, samples=600), config=SimConfig())
    alone = run_job(job, PROFILE)
    crowded = run_job(replace(job, num_devices=1), PROFILE)
    assert alone.workers == crowded.workers > 1
    assert alone.drop_rate == 0.0
    assert crowded.drop_rate > 0.5
    assert crowded.rate < 0.5 * alone.rate
