"""Structures the augmentation kernels are tested on: bulk (non-orthogonal and cubic), layered, a molecule."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule


def graphite_cell() -> Atoms:
    """Return AB-stacked graphite (4 atoms, hexagonal cell: 120° between a and b)."""
    return Atoms(
        'C4',
        scaled_positions=[[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]],
        cell=[[2.464, 0, 0], [-1.232, 2.13389, 0], [0, 0, 6.711]],
        pbc=True,
    )


@pytest.fixture
def diamond() -> Atoms:
    """Return the 2-atom primitive (fcc, 60° between vectors) diamond cell."""
    return bulk('C', 'diamond', a=3.567)


@pytest.fixture
def diamond_cubic() -> Atoms:
    """Return the 8-atom conventional diamond cell."""
    return bulk('C', 'diamond', a=3.567, cubic=True)


@pytest.fixture
def graphite() -> Atoms:
    """Return AB-stacked graphite."""
    return graphite_cell()


@pytest.fixture
def methane() -> Atoms:
    """Return CH4 without a cell, as ``ase.build.molecule`` makes it."""
    return molecule('CH4')


@pytest.fixture
def rocksalt() -> Atoms:
    """Return a 64-atom NaCl supercell (two elements in equal numbers)."""
    return bulk('NaCl', 'rocksalt', a=5.64, cubic=True).repeat(2)


@pytest.fixture
def rng() -> np.random.Generator:
    """Return a seeded generator."""
    return np.random.default_rng(2024)
