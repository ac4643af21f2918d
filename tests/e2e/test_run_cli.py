"""`ferret run` end to end: outputs, every framework with every algorithm, one-line user errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import main
from executor.models import build_model
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.experiment import RunSpec, experiment_summary, prepare, run_experiment
from executor.ocl.frameworks import FrameworkOptions
from planner.profile import LayerProfile, ModelProfile

FRAMEWORKS = ["oracle", "1-skip", "random-n", "last-n", "camel", "budgeted"]
ALGORITHMS = ["vanilla", "er", "mir", "lwf", "mas", "alsar"]


@pytest.fixture(scope="module")
def profile_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixed mnistnet profile: per sample 1+2 ms per layer; the slowest forward is conv2's 4 ms."""
    model = build_model("mnistnet", (1, 8, 8), 10)
    layers = tuple(
        LayerProfile(name, 4e-3 if name == "conv2" else 1e-3, 2e-3, 0, 0, 1000) for name in model.layer_names
    )
    path = tmp_path_factory.mktemp("profile") / "mnistnet.json"
    ModelProfile("mnistnet", layers, source="synthetic").save(path)
    return path


def ferret_run(*args: str | Path) -> int:
    return main(["run", *map(str, args)])


def test_run_writes_summary_config_metrics_and_plot(tmp_path, profile_file, capsys):
    out = tmp_path / "oracle"
    rc = ferret_run(
        "--framework", "oracle", "--stream", "class-incremental", "--stream-option", "tasks=2",
        "--samples", "150", "--eval-every", "50", "--profile", profile_file, "--out", out,
    )  # fmt: skip
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "accuracy.png",
        "config.json",
        "metrics.csv",
        "profile.json",
        "summary.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("online_accuracy", "test_accuracy", "measured_peak_memory_bytes", "train_flops", "a_auc", "wall_s"):
        assert isinstance(summary[key], int | float), key
    assert summary["trained"] == 150 and summary["skipped"] == 0 and summary["steps"] == 150
    assert summary["arrival_interval_s"] == pytest.approx(4e-3)  # td = the slowest layer's forward
    assert summary["train_flops"] == 150 * 3 * 4000  # 150 one-sample steps of FF + 2·FF
    assert summary["stream"] == "class-incremental" and summary["profile_source"] == "synthetic"
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["samples"]) for r in rows] == [50, 100, 150]
    assert float(rows[-1]["online_accuracy"]) == pytest.approx(summary["online_accuracy"], abs=1e-3)
    assert float(rows[-1]["test_accuracy"]) == pytest.approx(summary["test_accuracy"], abs=1e-3)
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 0 and config["framework"] == "oracle" and config["buffer_samples"] == 5000
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "online accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_framework_runs_every_algorithm(framework, profile_file):
    for algorithm in ALGORITHMS:
        spec = RunSpec(
            framework=framework,
            algorithm=AlgorithmConfig(name=algorithm, buffer_samples=50, mir_candidates=8),
            framework_options=FrameworkOptions(batch_size=3, window=6),
            stream="class-incremental",
            stream_options={"tasks": 2},
            samples=60,
            arrival_interval_s=2e-3,
            eval_every=30,
            profile_path=str(profile_file),
        )
        experiment = prepare(spec)
        summary = experiment_summary(experiment, run_experiment(experiment), decay_per_s=1.0)
        assert summary["trained"] + summary["skipped"] == 60, (framework, algorithm)
        assert summary["trained"] >= 1 and summary["steps"] >= 1
        assert 0 <= summary["online_accuracy"] <= 100 and math.isfinite(summary["test_accuracy"])
        assert summary["measured_peak_memory_bytes"] > summary["peak_memory_by_category"]["weights"]
        if framework == "oracle":
            assert summary["skipped"] == 0


def test_buffer_in_bytes_baseline_comparison_and_roofline(tmp_path, profile_file):
    base = tmp_path / "one-skip"
    common = ["--samples", "80", "--eval-every", "40", "--arrival-interval", "1ms"]
    assert ferret_run("--framework", "1-skip", *common, "--profile", profile_file, "--out", base) == 0
    out = tmp_path / "er"
    rc = ferret_run(
        "--algorithm", "er", "--buffer", "1KiB", *common, "--profile", profile_file, "--baseline", base, "--out", out
    )
    assert rc == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (out, base))
    assert a["buffer_samples"] == 16  # 1 KiB of 64-byte digits
    assert a["peak_memory_by_category"]["replay"] == 16 * 64
    expected = (a["online_accuracy"] - b["online_accuracy"]) - math.log(
        a["measured_peak_memory_bytes"] / b["measured_peak_memory_bytes"]
    )
    assert a["oagm"] == pytest.approx(expected) and "tagm" in a
    roof = tmp_path / "roofline"
    assert ferret_run("--device", "roofline:h100", "--samples", "20", "--out", roof) == 0
    summary = json.loads((roof / "summary.json").read_text())
    assert summary["profile_source"] == "roofline" and summary["arrival_interval_s"] < 1e-3


def test_measured_profile_when_none_is_given(tmp_path):
    out = tmp_path / "measured"
    assert ferret_run("--model", "mlp", "--samples", "20", "--framework", "1-skip", "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile_source"] == "measured" and summary["sample_step_s"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--framework", "ferret-9000"], "unknown framework 'ferret-9000'"),
        (["--algorithm", "ewc"], "unknown OCL algorithm 'ewc'"),
        (["--model", "mlp"], "model mnistnet, not mlp"),
        (["--buffer", "10B", "--algorithm", "er"], "holds no sample"),
        (["--stream-option", "sigma=0.5"], "does not take option(s) sigma"),
        (["--baseline", "/nonexistent/run"], "baseline summary not found"),
        (["--window", "2"], "--window (2) must be at least --batch-size (10)"),
        (["--framework-option", "plan=p.json"], "framework 'oracle' takes no --framework-option (got plan)"),
        (["--memory-budget", "1KiB"], "memory budget of 1024 B is less than the model itself"),
        (["--compute-budget", "1M", "--framework", "oracle"], "--compute-budget is spent by the budgeted framework"),
        (["--sampler", "similarity-aware"], "--sampler applies to algorithms with a replay memory"),
        (["--algorithm", "er", "--sampler", "lru"], "unknown replay sampler 'lru'"),
        (["--spend-saved-compute"], "--spend-saved-compute needs --compute-budget"),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(tmp_path, profile_file, capsys, args, message):
    out = tmp_path / "out"
    rc = ferret_run("--samples", "20", "--profile", profile_file, *args, "--out", out)
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("ferret run: error:")
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-budget", "2MiB", "--buffer", "1MiB"], "--buffer: not allowed with argument --memory-budget"),
        (["--memory-budget", "2MiB", "--buffer-samples", "9"], "not allowed with argument --memory-budget"),
        (["--compute-budget", "0"], "compute_budget_flops must be > 0, got '0'"),
        (["--compute-budget", "2 GiB"], "invalid FLOP count '2 GiB'"),
        (["--unfreeze-rate", "1.5"], "unfreeze_rate must be in [0, 1], got '1.5'"),
        (["--freezing", "sometimes"], "invalid choice: 'sometimes'"),
    ],
)
def test_budget_flag_errors_are_one_usage_line(tmp_path, capsys, args, message):
    """Flags made from the budget fields: units, bounds, choices and the exclusive replay size."""
    with pytest.raises(SystemExit) as exc:
        ferret_run(*args, "--out", tmp_path / "out")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_bad_profile_and_bad_option_through_the_console(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for extra in (["--profile", str(bad)], ["--stream-option", "tasks"]):
        proc = subprocess.run(
            [sys.executable, "-m", "analysis", "run", *extra, "--out", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_batch_profile_fits_a_fixed_step_cost_and_batching_pays(tmp_path, profile_file):
    # The fixed mnistnet profile again at batch 8, where a step costs 2× (not 8×) a 1-row step.
    batch8 = ModelProfile.load(profile_file)
    batch8 = ModelProfile("mnistnet", tuple(replace_times(layer, 2) for layer in batch8.layers), batch_size=8,
                          source="synthetic")  # fmt: skip
    batch8_file = tmp_path / "mnistnet-b8.json"
    batch8.save(batch8_file)
    runs = {}
    for name, extra in (("linear", []), ("fitted", ["--batch-profile", batch8_file])):
        out = tmp_path / name
        rc = ferret_run("--framework", "last-n", "--batch-size", "8", "--samples", "300", "--eval-every", "0",
                        "--arrival-interval", "1ms", "--profile", profile_file, *extra, "--out", out)  # fmt: skip
        assert rc == 0
        runs[name] = json.loads((out / "summary.json").read_text())
    one_row = 4 * 3e-3 + 3e-3  # conv2's forward is 4 ms, the others 1 ms; backward 2 ms each
    assert runs["linear"]["step_fixed_s"] == 0.0
    assert runs["fitted"]["sample_step_s"] == pytest.approx(one_row)
    assert runs["fitted"]["step_fixed_s"] == pytest.approx(one_row * (1 - 1 / 7))  # 2× at 8 rows: 1/7 per row
    assert runs["fitted"]["trained"] > 2 * runs["linear"]["trained"]


def replace_times(layer: LayerProfile, factor: float) -> LayerProfile:
    return LayerProfile(layer.name, layer.t_fwd_s * factor, layer.t_bwd_s * factor, 0, 0, layer.fwd_flops * 8)


def test_measured_and_roofline_runs_fit_the_step_cost(tmp_path):
    out = tmp_path / "roof"
    rc = ferret_run("--framework", "1-skip", "--samples", "60", "--eval-every", "0", "--device", "roofline:titan-xp",
                    "--out", out)  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step_fixed_s"] > 0 and summary["row_step_s"] < summary["sample_step_s"]


def test_batch_profile_needs_a_profile(tmp_path, profile_file, capsys):
    rc = ferret_run("--batch-profile", profile_file, "--samples", "10", "--out", tmp_path / "x")
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ferret run: error: --batch-profile needs --profile (the batch-1 profile it goes with)"]
    assert not (tmp_path / "x").exists()


def test_budgeted_alsar_reports_bytes_flops_and_wall_clock(tmp_path, profile_file, capsys):
    """The issue's command: aL-SAR under a 2 MiB byte budget and a FLOP budget on blurry digits."""
    out = tmp_path / "alsar"
    step = 3 * 16 * 4000  # a 16-row step of the fixed profile (FF = 4 layers × 1000 FLOPs)
    rc = ferret_run(
        "--algorithm", "alsar", "--sampler", "similarity-aware", "--memory-budget", "2MiB",
        "--compute-budget", f"{2 * step / 1e3}k", "--dataset", "digits", "--stream", "blurry",
        "--batch-size", "16", "--samples", "150", "--eval-every", "50", "--profile", profile_file, "--out", out,
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["framework"] == "budgeted" and summary["algorithm"] == "alsar"
    assert summary["iterations_per_sample"] == pytest.approx(2.0) and summary["steps"] == 300
    budget = summary["memory_budget"]
    assert budget["budget_bytes"] == 2 * 2**20 and budget["total_bytes"] == sum(budget["parts"].values())
    assert {"weights", "optimizer", "window", "replay", "sampler", "freezing"} <= set(budget["parts"])
    assert 0 < summary["stored_peak_bytes"] <= budget["budget_bytes"]
    assert summary["buffer_samples"] == budget["replay_capacity"]
    assert summary["train_flops_per_sample"] == pytest.approx(summary["train_flops"] / 150)
    assert summary["train_wall_s"] > 0 and summary["train_cpu_s"] > 0
    assert 0 <= summary["frozen_step_fraction"] <= 1
    printed = capsys.readouterr().out
    assert "stored state peak" in printed and "MFLOPs per sample" in printed and "wall" in printed
