"""The README's main job, `scripts/demo.sh`, end to end: it must finish and end with the comparison.

It is the one command a new user runs, and nothing else exercises the commands in its order (a
merge once made its last step refuse its own folder). About a minute on 2 cores; the set-up step
is skipped (the suite runs inside the environment it would build)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_ends_with_the_comparison_table_and_its_files(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "FERRET_DEMO_SKIP_SETUP": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        ["bash", "scripts/demo.sh", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| run-")]
    assert [row.split("|")[1].strip() for row in table] == [
        "run-oracle",
        "run-1-skip (baseline)",
        "run-ferret-max",
        "run-ferret-min",
    ]
    for name in ("comparison.md", "comparison.csv", "accuracy.png", "memory_vs_accuracy.png"):
        assert (out / "compare" / name).stat().st_size > 0, name
    assert (out / "whatif" / "rate_vs_memory.png").is_file()
