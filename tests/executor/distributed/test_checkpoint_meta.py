"""A checkpoint's `meta.json` against the resuming run: the same run passes; any other setting,
a nested one included (the algorithm's), is one line naming it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from executor.distributed.checkpoint import FORMAT, begin, complete, read_meta
from executor.distributed.checkpoint import META as META_FILE
from planner.errors import FerretError

META: dict[str, Any] = {
    "n": 90,
    "seed": 0,
    "algorithm": {"name": "er", "sampler": "similarity-aware", "mas_lambda": 1.0},
}


def test_the_same_run_resumes_and_another_setting_is_named(tmp_path):
    begin(tmp_path, 30)
    path = complete(tmp_path, 30, META)
    assert read_meta(path, META)["position"] == 30
    with pytest.raises(FerretError, match=r"made with seed = 0, this run has 1$"):
        read_meta(path, {**META, "seed": 1})
    other = {**META, "algorithm": {**META["algorithm"], "sampler": "uniform"}}
    with pytest.raises(FerretError, match=r"made with algorithm.sampler = 'similarity-aware', this run has 'uniform'$"):
        read_meta(path, other)


def test_a_checkpoint_of_another_layout_is_one_line(tmp_path):
    """A checkpoint written before the layout changed (no "format" in meta.json) is refused
    before anything is loaded — not a KeyError from deep inside the load."""
    begin(tmp_path, 30)
    path = complete(tmp_path, 30, META)
    meta = json.loads((path / META_FILE).read_text())
    del meta["format"]
    (path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(FerretError, match=rf"a checkpoint of format 1; this ferret reads format {FORMAT} "):
        read_meta(path, META)
    # Format 2 kept LwF's teacher and MAS's importance whole, not per stage; format 3 the whole
    # record in every checkpoint (no chunks, no chain).
    for old in (2, 3):
        (path / META_FILE).write_text(json.dumps({**meta, "format": old}))
        with pytest.raises(FerretError, match=rf"a checkpoint of format {old}; this ferret reads format {FORMAT} "):
            read_meta(path, META)
