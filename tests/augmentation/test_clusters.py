"""Clusters: every atom's nearest neighbour between d and factor × d, no pair closer than d, sizes as asked."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from aiida_trainspot.augmentation import ClusterParameters, random_clusters

pytestmark = pytest.mark.kernel


def test_neighbour_distances_and_sizes_are_within_bounds(rng):
    parameters = ClusterParameters(n_clusters=200, min_atoms=2, max_atoms=7, distance=1.5, distance_factor=1.4)
    products = random_clusters([6, 1, 8], parameters, rng)
    sizes = [len(cluster) for cluster, _ in products]
    assert len(products) == 200 and min(sizes) == 2 and max(sizes) == 7  # both ends of the size range, never more
    for cluster, drawn in products:
        distances = squareform(pdist(cluster.positions))
        np.fill_diagonal(distances, np.inf)
        assert distances.min() >= 1.5
        assert distances.min(axis=1).max() <= 1.4 * 1.5
        assert drawn['size'] == len(cluster) and not cluster.pbc.any()
        assert set(cluster.numbers) <= {1, 6, 8}
    assert {int(number) for cluster, _ in products for number in cluster.numbers} == {1, 6, 8}


def test_clusters_are_three_dimensional_not_chains(rng):
    """Growth from random atoms along isotropic directions gives compact clusters, not only linear chains."""
    products = random_clusters([6], ClusterParameters(n_clusters=20, min_atoms=10, max_atoms=10), rng)
    smallest_spread = [np.linalg.svd(c.positions - c.positions.mean(axis=0))[1][-1] for c, _ in products]
    assert np.median(smallest_spread) > 0.5


def test_same_seed_same_clusters():
    parameters = ClusterParameters(n_clusters=5)
    first = random_clusters([6, 14], parameters, np.random.default_rng(3))
    again = random_clusters([6, 14], parameters, np.random.default_rng(3))
    other = random_clusters([6, 14], parameters, np.random.default_rng(4))
    assert all(a == b for (a, _), (b, _) in zip(first, again, strict=True))
    assert any(a != b for (a, _), (b, _) in zip(first, other, strict=True))
