"""Selection of uncertain frames for labelling: above a threshold, then capped (pure numpy and ASE, no AiiDA).

A frame is a candidate when its disagreement exceeds the threshold of *any* property (seed 001, §II.1.6). Above the
cap, seed 001 keeps a uniformly random subset, which favours the configurations MD visits most; the ``diverse``
method instead spreads the picks by farthest-point sampling on a structural descriptor (:func:`structure_descriptor`),
so that many near-identical frames of one trajectory do not fill the budget. Both are deterministic given the seed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

SELECTION_METHODS = ('random', 'diverse')
DEFAULT_MAX_FRAMES = 1000
"""Largest number of frames selected per iteration (seed 001)."""

DESCRIPTOR_CUTOFF = 5.0
"""Å: the radius within which :func:`structure_descriptor` counts neighbours."""
DESCRIPTOR_BINS = 20


def above_threshold(disagreements: Mapping[str, np.ndarray], thresholds: Mapping[str, float | None]) -> np.ndarray:
    """Return the mask of frames whose disagreement exceeds the threshold of any property.

    ``disagreements`` maps a property to its per-frame values; a property whose threshold is missing or ``None`` is
    ignored, and a NaN disagreement (e.g. no stress for a molecule) never exceeds a threshold.
    """
    columns = {name: np.asarray(values, dtype=np.float64) for name, values in disagreements.items()}
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f'the disagreement columns have different lengths: {sorted(lengths)}')
    mask = np.zeros(lengths.pop() if lengths else 0, dtype=bool)
    for name, values in columns.items():
        threshold = thresholds.get(name)
        if threshold is not None:
            mask |= values > threshold
    return mask


def farthest_point_sampling(descriptors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``count`` row indices of ``descriptors``: a random first row, then each time the farthest from the picked.

    Distances are Euclidean; ties go to the lowest index. The indices come in the order they were picked.
    """
    descriptors = np.asarray(descriptors, dtype=np.float64)
    total = len(descriptors)
    count = min(count, total)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    picked = [int(rng.integers(total))]
    nearest = np.linalg.norm(descriptors - descriptors[picked[0]], axis=1)
    for _ in range(count - 1):
        picked.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(descriptors - descriptors[picked[-1]], axis=1))
    return np.array(picked, dtype=np.int64)


def cap_selection(
    candidates: np.ndarray,
    max_frames: int,
    rng: np.random.Generator,
    method: str = 'random',
    descriptors: np.ndarray | None = None,
) -> np.ndarray:
    """Return at most ``max_frames`` of the frame indices ``candidates``, sorted; all of them if they fit.

    ``method`` is ``random`` (uniform without replacement) or ``diverse`` (farthest-point sampling on
    ``descriptors``, one row per candidate).
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if method not in SELECTION_METHODS:
        raise ValueError(f'unknown selection method {method!r}: use one of {SELECTION_METHODS}')
    if max_frames < 1:
        raise ValueError(f'`max_frames` must be at least 1, got {max_frames}')
    if len(candidates) <= max_frames:
        return np.sort(candidates)
    if method == 'random':
        return np.sort(rng.choice(candidates, size=max_frames, replace=False))
    if descriptors is None or len(descriptors) != len(candidates):
        raise ValueError('the `diverse` method needs one descriptor row per candidate frame')
    return np.sort(candidates[farthest_point_sampling(descriptors, max_frames, rng)])


def structure_descriptor(atoms: Atoms, species: list[int]) -> np.ndarray:
    """Return a fixed-length fingerprint of ``atoms``: composition and a coarse radial distribution.

    The vector holds the fraction of atoms of each element of ``species`` (atomic numbers, the same list for all
    frames compared), then the mean number of neighbours per atom in :data:`DESCRIPTOR_BINS` equal shells up to
    :data:`DESCRIPTOR_CUTOFF` Å (periodic images included). It is invariant to permutations, translations and
    rotations, and tells apart compressed, expanded, molten and differently composed frames.
    """
    numbers = atoms.numbers
    composition = np.array([np.count_nonzero(numbers == number) for number in species], dtype=np.float64)
    distances = neighbor_list('d', atoms, DESCRIPTOR_CUTOFF)
    histogram, _ = np.histogram(distances, bins=DESCRIPTOR_BINS, range=(0.0, DESCRIPTOR_CUTOFF))
    return np.concatenate((composition / len(atoms), histogram / len(atoms)))
