"""Supercells: periodic structures replicated until the images of every atom are far enough, within an atom budget."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from .geometry import periodic_heights
from .parameters import SupercellParameters


def supercell_repeats(atoms: Atoms, min_length: float, max_atoms: int) -> tuple[int, int, int]:
    """Return how often to repeat ``atoms`` along each cell vector.

    The periodic axis of smallest height grows by one repeat at a time while some height is below ``min_length`` and
    the supercell stays within ``max_atoms``; non-periodic axes are never repeated.
    """
    if len(atoms) > max_atoms:
        raise ValueError(f'the structure has {len(atoms)} atoms, more than `max_atoms` ({max_atoms})')
    heights = periodic_heights(atoms.cell.array, atoms.pbc)
    repeats = np.ones(3, dtype=int)
    while True:
        lengths = heights * repeats
        short = np.flatnonzero(lengths < min_length)
        if not len(short):
            break
        axis = short[np.argmin(lengths[short])]
        if len(atoms) * np.prod(repeats) // repeats[axis] * (repeats[axis] + 1) > max_atoms:
            break
        repeats[axis] += 1
    return tuple(int(repeat) for repeat in repeats)


def replicate(atoms: Atoms, parameters: SupercellParameters) -> tuple[Atoms, tuple[int, int, int]]:
    """Return the supercell of ``atoms`` that :func:`supercell_repeats` chooses, and the repeats."""
    repeats = supercell_repeats(atoms, parameters.min_length, parameters.max_atoms)
    return atoms.repeat(repeats), repeats
