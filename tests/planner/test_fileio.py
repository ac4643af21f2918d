import json

import pytest

from planner.errors import FerretError
from planner.fileio import atomic_dir, atomic_path, atomic_write_json, read_json


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_dir_moves_files_only_on_success(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), atomic_dir(out) as stage:
        (stage / "summary.json").write_text("{}")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(out) as stage:
        (stage / "sub").mkdir()
        (stage / "sub" / "f.txt").write_text("x")
        (stage / "summary.json").write_text("{}")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["sub", "sub/f.txt", "summary.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_dir_refuses_a_file_target(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(FerretError, match="not a folder"), atomic_dir(target):
        pass


def test_read_json_errors_name_the_path(tmp_path):
    with pytest.raises(FerretError, match="plan not found: .*missing.json"):
        read_json(tmp_path / "missing.json", "plan")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FerretError, match=r"bad.json is not valid JSON \(line 1"):
        read_json(bad, "profile")


def test_outputs_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {})
        with atomic_dir(tmp_path / "d") as stage:
            (stage / "f.txt").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d" / "f.txt").stat().st_mode & 0o777 == 0o644
