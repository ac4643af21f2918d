"""What an artifact was made from, and the one check every consumer of an artifact calls.

Every artifact carries a `provenance` object (fields may be added, never renamed): a profile
(`profile.json`), a plan (`plan.json`), a simulation or run folder (`summary.json`). Its fields,
each present when known:

- `model`, `input_shape`, `num_classes`: the model and what it was built for;
- `layers`: the names of the model's layers (`layers_id`), and `structure`: the layers as the
  planner sees them (`structure_id`: names, parameter bytes and activation bytes per sample),
  the same for every profile of one model built for one input and class count, whatever the
  device or the measured times (a hand-made `synthetic` profile records only `layers`);
- `profile`, `plan`: content hashes (`content_id`) of the profile and plan an artifact was
  made from;
- `dataset`, `stream`, `samples`, `seed`: the stream a run or simulation saw.

A consumer states what it holds in the same terms and calls `check_made_for`: every field
that both sides know must agree, or one line names the field, both values and the flag that
overrides the check where a user could mean the mismatch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from planner.errors import ValidationError

PROVENANCE_KEY = "provenance"

# The fields, in the order a mismatch is reported, with how a message names them.
FIELDS = {
    "model": "model",
    "input_shape": "input shape",
    "num_classes": "class count",
    "layers": "layer names",
    "structure": "layer sizes (parameter or activation bytes)",
    "dataset": "data set",
    "dataset_options": "data-set options",
    "stream": "stream",
    "stream_options": "stream options",
    "samples": "sample count",
}

_HASHES = ("layers", "structure")


def content_id(obj: Any) -> str:
    """A short hash of a JSON-able object (key order ignored)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def structure_id(layers: Iterable[tuple[str, int, int]], batch_size: int = 1) -> str:
    """`content_id` of (name, parameter bytes, activation bytes per sample) per layer."""
    return content_id([[name, int(params), int(acts) // max(1, batch_size)] for name, params, acts in layers])


def layers_id(names: Iterable[str]) -> str:
    """`content_id` of the layer names, in order."""
    return content_id(list(names))


def read_provenance(obj: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    """The `provenance` object of a JSON document, or None when it has none."""
    raw = obj.get(PROVENANCE_KEY)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}.{PROVENANCE_KEY} must be an object, got {type(raw).__name__}")
    return dict(raw)


def mismatches(recorded: Mapping[str, Any] | None, actual: Mapping[str, Any]) -> list[str]:
    """Each field both sides know and disagree on, in words: `model mlp, not mnistnet`."""
    if not recorded:
        return []
    out: list[str] = []
    for key, words in FIELDS.items():
        a, b = _normal(recorded.get(key)), _normal(actual.get(key))
        if a is None or b is None or a == b:
            continue
        if key in _HASHES:  # a hash says only that they differ; a named difference says more
            if not out:
                out.append(f"other {words}")
        else:
            out.append(f"{words} {_show(a)}, not {_show(b)}")
    return out


def check_made_for(
    recorded: Mapping[str, Any] | None,
    actual: Mapping[str, Any],
    what: str,
    against: str,
    *,
    force: bool = False,
    force_flag: str | None = "--force",
) -> list[str]:
    """Refuse (one line) when `what` was made for something other than `against`; with
    `force` return the mismatches instead (`force_flag`: the flag that sets it, None if none)."""
    found = mismatches(recorded, actual)
    if found and not force:
        hint = f" ({force_flag} to go on anyway)" if force_flag else ""
        raise ValidationError(f"{what} does not match {against}: {'; '.join(found)}{hint}")
    return found


def _normal(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in sorted(value.items())}
    return value


def _show(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return "×".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)
