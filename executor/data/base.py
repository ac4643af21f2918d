"""`Dataset`: train and test arrays in memory, ready for a model.

Inputs are float32 `(N, *input_shape)`, labels int64 in `[0, num_classes)`.
`stored_bytes_per_sample` is what one sample costs in a replay memory at its stored dtype
(uint8 pixels for images), the unit of aL-SAR's memory budget (SPEC §10.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planner.errors import ValidationError


@dataclass(frozen=True, eq=False)
class Dataset:
    """One data set's train and test splits in memory, checked on construction (see the module docstring).

    A bad dtype, shape or label raises `ValidationError`; `stored_bytes_per_sample` defaults to the
    float32 input size when not given.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    stored_bytes_per_sample: int = 0

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.dtype != np.float32:
                raise ValidationError(f"{self.name}: x_{split} must be float32, got {x.dtype}")
            if y.dtype != np.int64 or y.ndim != 1:
                raise ValidationError(f"{self.name}: y_{split} must be a 1-D int64 array")
            if len(x) != len(y):
                raise ValidationError(f"{self.name}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValidationError(f"{self.name}: y_{split} labels must lie in [0, {self.num_classes})")
        if len(self.y_train) == 0:
            raise ValidationError(f"{self.name}: the training split holds no rows")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValidationError(f"{self.name}: train and test inputs differ in shape")
        if self.stored_bytes_per_sample == 0:
            object.__setattr__(self, "stored_bytes_per_sample", int(math.prod(self.input_shape)) * 4)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    def __len__(self) -> int:
        return len(self.y_train)
