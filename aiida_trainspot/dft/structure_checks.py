"""Checks that a structure can go to a DFT code at all, as pure functions (no AiiDA).

A DFT code given overlapping atoms or a collapsed cell either crashes after queueing or, worse, returns numbers;
these checks let a CalcJob refuse such a structure at submission with a message that says what is wrong.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.geometry.minkowski_reduction import minkowski_reduce
from ase.neighborlist import neighbor_list

MIN_INTERATOMIC_DISTANCE = 0.5
"""Shortest distance (Å) allowed between two atoms, periodic images included: no bond is shorter (H₂: 0.74 Å)."""

MIN_CELL_SINE = 1e-3
"""Smallest allowed ratio of the volume (area, length) spanned by the periodic cell vectors to the product of their
lengths: below it the vectors are (nearly) linearly dependent and the cell has no volume along them."""


def _axes(indices: np.ndarray) -> str:
    """Return the cell vectors ``indices`` by their letters, e.g. ``a, c``."""
    return ', '.join('abc'[index] for index in indices)


def check_periodic_volume(atoms: Atoms, min_sine: float = MIN_CELL_SINE) -> str | None:
    """Return why the cell of ``atoms`` has (near-)zero volume along its periodic directions, or ``None``.

    The volume spanned by the periodic vectors (an area for two, a length for one) is compared with the product of
    their lengths, so that the test does not depend on the size of the cell.
    """
    periodic = np.flatnonzero(atoms.pbc)
    if periodic.size == 0:
        return None
    vectors = atoms.cell.array[periodic]
    lengths = np.linalg.norm(vectors, axis=1)
    if np.any(lengths < 1e-8):
        return f'cell vector(s) {_axes(periodic[lengths < 1e-8])} along periodic directions have zero length'
    spanned = np.sqrt(max(np.linalg.det(vectors @ vectors.T), 0.0))
    if spanned < min_sine * np.prod(lengths):
        return (
            f'cell vectors {_axes(periodic)} along the periodic directions are (nearly) linearly dependent: '
            f'they span {spanned:.3g} Å^{periodic.size}, the cell has no volume along them'
        )
    return None


def check_overlapping_atoms(atoms: Atoms, min_distance: float = MIN_INTERATOMIC_DISTANCE) -> str | None:
    """Return which two atoms are closer than ``min_distance`` (Å), periodic images included, or ``None``.

    The periodic cell vectors are Minkowski-reduced first, which changes no distance but bounds the number of images
    to search. Call :func:`check_periodic_volume` first: a collapsed cell has no reduced basis.
    """
    if len(atoms) == 0:
        return None
    reduced = atoms.copy()
    reduced.set_cell(minkowski_reduce(atoms.cell.array, pbc=atoms.pbc)[0], scale_atoms=False)
    lengths = np.linalg.norm(reduced.cell.array, axis=1)[reduced.pbc]
    if lengths.size and lengths.min() < min_distance:
        return (
            f'every atom is {lengths.min():.3f} Å from its own periodic image (below {min_distance} Å): '
            'the cell is too small along a periodic direction'
        )
    first, second, distances = neighbor_list('ijd', reduced, min_distance)
    if distances.size == 0:
        return None
    closest = int(np.argmin(distances))
    i, j = sorted((int(first[closest]), int(second[closest])))
    symbols = atoms.get_chemical_symbols()
    return (
        f'atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {distances[closest]:.3f} Å apart '
        f'(below {min_distance} Å): they overlap'
    )


def check_structure(atoms: Atoms, min_distance: float = MIN_INTERATOMIC_DISTANCE) -> str | None:
    """Return what makes ``atoms`` unfit for a DFT calculation, or ``None`` when it is fit.

    Checked: atoms exist, the cell has a volume along its periodic directions, and no two atoms (periodic images
    included) are closer than ``min_distance`` (Å).
    """
    if len(atoms) == 0:
        return 'the structure has no atoms'
    return check_periodic_volume(atoms) or check_overlapping_atoms(atoms, min_distance)
