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


def _ferret_folder(stage, *names):
    (stage / "config.json").write_text(json.dumps({"ferret_version": "test"}))
    for name in names:
        (stage / name).write_text(name)


def test_atomic_dir_replaces_the_folder_as_a_whole_and_records_its_files(tmp_path):
    out = tmp_path / "run"
    with atomic_dir(out) as stage:
        _ferret_folder(stage, "trace.jsonl", "summary.json")
    with atomic_dir(out) as stage:
        _ferret_folder(stage, "trace.csv")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "trace.csv"]
    assert json.loads((out / "config.json").read_text())["output_files"] == ["config.json", "trace.csv"]


def test_atomic_dir_refuses_a_folder_with_files_ferret_did_not_write(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("mine")
    with pytest.raises(FerretError, match=r"holds files ferret did not write \(thesis.txt\)"), atomic_dir(notes):
        pass
    out = tmp_path / "run"
    with atomic_dir(out) as stage:
        _ferret_folder(stage, "summary.json")
    (out / "extra.md").write_text("added by hand")
    with pytest.raises(FerretError, match="holds extra.md, which ferret did not write"), atomic_dir(out):
        pass
    assert (notes / "thesis.txt").read_text() == "mine" and (out / "extra.md").exists()


def test_without_rename_exchange_two_renames_and_a_repair(tmp_path, monkeypatch):
    """Where the kernel cannot swap, the old folder waits as `.NAME.<token>.replaced`; a writer
    killed between the two renames leaves it, and the next writer puts it back first."""
    from planner import output_safety

    monkeypatch.setattr(output_safety, "_exchange", lambda a, b: False)
    out = tmp_path / "run"
    with atomic_dir(out) as stage:
        _ferret_folder(stage, "a.txt")
    with atomic_dir(out) as stage:
        _ferret_folder(stage, "b.txt")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt", "config.json"]
    out.rename(tmp_path / ".run.x9.replaced")  # killed after the first rename
    with pytest.raises(RuntimeError), atomic_dir(out):
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt", "config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_atomic_files_writes_a_file_and_its_siblings_only(tmp_path):
    from planner.fileio import atomic_files

    (tmp_path / "config.json").write_text("theirs")
    with atomic_files(tmp_path / "p.json") as stage:
        for name in ("p.json", "p.config.json", "p.summary.json"):
            (stage / name).write_text(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "p.config.json", "p.json", "p.summary.json"]
    assert (tmp_path / "config.json").read_text() == "theirs"
    with pytest.raises(FerretError, match="is a folder"), atomic_files(tmp_path):
        pass


def test_read_json_refuses_what_json_has_no_number_for(tmp_path):
    bad = tmp_path / "bad.json"
    for text, needle in (('{"x": NaN}', "no NaN"), ('{"x": Infinity}', "no Infinity"), ("[" * 100000, "deeply")):
        bad.write_text(text)
        with pytest.raises(FerretError, match=needle):
            read_json(bad)
