"""The compiled lock-step of `planner.s3_batch` (planner/_s3_kernel.c): bit for bit `S3Batch._numpy_step`."""

import numpy as np

from planner.s3_batch import S3Batch

def step(
    batch: S3Batch,
    A: int,
    t: int,
    memory: np.ndarray,
    rec_stage: np.ndarray,
    rec_ratio: np.ndarray,
    rec_rate: np.ndarray,
    rec_memory: np.ndarray,
) -> None: ...
