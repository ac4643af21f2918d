"""The compiled kernels of the worker chains (planner/_s3_kernel.c), each bit for bit its numpy or
Python reference: `run`, `S3Batch._numpy_step`; `s2_run`, `ChainBuilder._s2_run`; `walk`, `best_walk`."""

import numpy as np

from planner.chain_state import ChainState
from planner.s3_batch import S3Batch

def s2_run(
    state: ChainState, s3: S3Batch, rate: float, memory: int, last_run: int, ints: np.ndarray, floats: np.ndarray
) -> tuple[int, int, float, int]: ...
def run(
    batch: S3Batch,
    counts: np.ndarray,
    t: int,
    memory: np.ndarray,
    rec_stage: np.ndarray,
    rec_ratio: np.ndarray,
    rec_rate: np.ndarray,
    rec_memory: np.ndarray,
) -> None: ...
def walk(
    rates: np.ndarray, memory: np.ndarray, ratios: np.ndarray, num_workers: int, budget: int, slack: float
) -> tuple[int, int, int, float] | None: ...
