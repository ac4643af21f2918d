"""`builtin:NAME` profiles: lookup, listing, and a clear error naming what exists."""

import pytest

from planner.builtin import BUILTIN_DIR, builtin_names, builtin_profile, resolve_profile
from planner.errors import FerretError
from tests.planner.profiles import hand_profile


def test_every_shipped_profile_loads_and_validates():
    names = builtin_names()
    assert names == sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))
    for name in names:
        profile = resolve_profile(f"builtin:{name}")
        assert profile.num_layers >= 1
        assert builtin_profile(f"{name}.json") == profile


def test_unknown_name_lists_what_exists():
    with pytest.raises(FerretError, match="unknown built-in profile 'nope'; available: ") as exc:
        resolve_profile("builtin:nope")
    for name in builtin_names():
        assert name in str(exc.value)
    with pytest.raises(FerretError, match="unknown built-in profile"):
        resolve_profile("builtin:../profile")


def test_paths_still_work(tmp_path):
    path = tmp_path / "p.json"
    hand_profile().save(path)
    assert resolve_profile(str(path)) == hand_profile()
