"""The profile and plans the end-to-end run tests start from: mnistnet's roofline profile on a
Titan Xp for digits' 8×8 images (the same numbers on every machine), and `ferret plan`s of it."""

from __future__ import annotations

from pathlib import Path

from analysis.cli import main

ROOFLINE = ["--model", "mnistnet", "--input-shape", "1,8,8", "--device", "roofline:titan-xp"]


def roofline_profile(folder: Path) -> Path:
    """`ferret profile` of mnistnet on the roofline device, as `folder/mnistnet.json`."""
    profile = folder / "mnistnet.json"
    assert main(["profile", *ROOFLINE, "--out", str(profile)]) == 0
    return profile


def plan_of(profile: Path, out: Path, *flags: str) -> Path:
    """`ferret plan --profile PROFILE FLAGS… --out OUT`."""
    assert main(["plan", "--profile", str(profile), *flags, "--out", str(out)]) == 0
    return out
