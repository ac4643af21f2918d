"""Data sets (built-in, generated, or loaded from local files) and the streams built on them."""

from executor.data.base import Dataset
from executor.data.registry import DATASETS, load_dataset, register_dataset
from executor.data.stream import STREAMS, Stream, build_stream, register_stream

__all__ = [
    "DATASETS",
    "STREAMS",
    "Dataset",
    "Stream",
    "build_stream",
    "load_dataset",
    "register_dataset",
    "register_stream",
]
