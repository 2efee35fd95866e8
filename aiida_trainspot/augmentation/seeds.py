"""Seeds: one per operation from the global seed, one random generator per structure from the operation's seed."""

from __future__ import annotations

import zlib

import numpy as np


def operation_seed(seed: int, operation: str) -> int:
    """Return the seed of ``operation`` derived from the global ``seed``.

    It depends on the operation's name only, so that enabling or disabling one operation leaves the structures of the
    others unchanged.
    """
    if seed < 0:
        raise ValueError(f'`seed` must not be negative, got {seed}')
    return int(np.random.SeedSequence([seed, zlib.crc32(operation.encode())]).generate_state(1)[0])


def structure_rng(seed: int, index: int) -> np.random.Generator:
    """Return the generator for structure ``index``: its draws do not depend on the other structures of the dataset."""
    return np.random.default_rng([seed, index])
