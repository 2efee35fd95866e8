"""Random clusters: non-periodic aggregates grown atom by atom at bonding-like distances."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from .parameters import ClusterParameters

MAX_PLACEMENT_ATTEMPTS = 10_000
"""Random trial sites per new atom before the growth of a cluster gives up."""


def _new_site(positions: np.ndarray, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """Return a site between ``low`` and ``high`` from a random atom of ``positions``, at least ``low`` from all."""
    for _ in range(MAX_PLACEMENT_ATTEMPTS):
        direction = rng.normal(size=3)
        candidate = positions[rng.integers(len(positions))] + direction / np.linalg.norm(direction) * rng.uniform(
            low, high
        )
        if np.linalg.norm(positions - candidate, axis=1).min() >= low:
            return candidate
    raise RuntimeError(f'no free site between {low} and {high} Å of a cluster of {len(positions)} atoms')


def grow_cluster(numbers: Sequence[int], distance: float, distance_factor: float, rng: np.random.Generator) -> Atoms:
    """Return a non-periodic cluster of atoms ``numbers`` without a cell (the vacuum is padded later).

    The first atom sits at the origin; each next one at a distance drawn uniformly in [``distance``,
    ``distance_factor`` × ``distance``] from a randomly chosen atom, along an isotropic direction, and is kept only if
    it is at least ``distance`` from every atom. So every atom's nearest neighbour lies within those bounds.
    """
    positions = np.zeros((1, 3))
    for _ in range(1, len(numbers)):
        site = _new_site(positions, distance, distance_factor * distance, rng)
        positions = np.vstack([positions, site])
    return Atoms(numbers=list(numbers), positions=positions, pbc=False)


def random_clusters(
    species: Sequence[int], parameters: ClusterParameters, rng: np.random.Generator
) -> list[tuple[Atoms, dict[str, Any]]]:
    """Return ``n_clusters`` clusters of random size in [``min_atoms``, ``max_atoms``] and random ``species``."""
    products = []
    for _ in range(parameters.n_clusters):
        size = int(rng.integers(parameters.min_atoms, parameters.max_atoms, endpoint=True))
        numbers = rng.choice(np.asarray(species), size=size)
        cluster = grow_cluster(numbers, parameters.distance, parameters.distance_factor, rng)
        drawn = {'size': size, 'distance': parameters.distance, 'distance_factor': parameters.distance_factor}
        products.append((cluster, drawn))
    return products
