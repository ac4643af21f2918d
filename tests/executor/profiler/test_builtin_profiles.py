"""The shipped roofline profiles are exactly what the generator produces, and load as profiles."""

import json
import subprocess
import sys
from pathlib import Path

from executor.profiler.builtin import BUILTIN_DIR, BUILTIN_SPECS, builtin_profiles
from planner.profile import ModelProfile

REPO = Path(__file__).resolve().parents[3]


def test_shipped_files_equal_generated_profiles():
    generated = builtin_profiles()
    shipped = sorted(p.name for p in BUILTIN_DIR.glob("*.json"))
    assert shipped == sorted(generated)
    for name, profile in generated.items():
        assert json.loads((BUILTIN_DIR / name).read_text()) == profile.to_json(), name
        assert ModelProfile.load(BUILTIN_DIR / name) == profile


def test_required_profiles_are_shipped():
    names = {(s.model, s.device, s.input_shape, s.num_classes) for s in BUILTIN_SPECS}
    assert ("mnistnet", "titan-xp", (1, 28, 28), 10) in names
    assert ("convnet", "titan-xp", (3, 32, 32), 10) in names
    assert ("resnet18", "h100", (3, 224, 224), 10) in names
    assert ("mlp", "titan-xp", (54,), 7) in names


def test_script_check_mode_passes():
    proc = subprocess.run(
        [sys.executable, "scripts/make_builtin_profiles.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
