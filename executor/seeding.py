"""One seed drives every random source: Python, NumPy, torch (and SimPy through NumPy).

`seed_everything(seed, rank)` seeds the global generators with `seed + rank` so that ranks of a
distributed run differ but stay reproducible. Components that need their own stream of random
numbers (a framework's batch choice, a replay buffer's reservoir) derive it from the run seed
and a name with `derive_seed`/`numpy_rng`, so that adding a random draw in one component never
shifts the draws of another.
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch

_MAX_SEED = 2**63 - 1


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed Python's `random`, NumPy's legacy global RNG and torch (CPU and CUDA); return the seed used."""
    if seed < 0:
        raise ValueError(f"seed must be ≥ 0, got {seed}")
    effective = (seed + rank) % _MAX_SEED
    random.seed(effective)
    np.random.seed(effective % 2**32)
    torch.manual_seed(effective)
    return effective


def derive_seed(seed: int, *names: str | int) -> int:
    """A seed for one named component: stable across runs, platforms and Python versions."""
    keys = [seed] + [zlib.crc32(str(name).encode()) for name in names]
    low, high = (int(v) for v in np.random.SeedSequence(keys).generate_state(2, np.uint32))
    return (low | high << 32) % _MAX_SEED


def numpy_rng(seed: int, *names: str | int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *names))


def torch_generator(seed: int, *names: str | int, device: str | torch.device = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, *names))
    return generator
