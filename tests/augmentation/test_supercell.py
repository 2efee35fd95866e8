"""Supercells meet both limits: periodic heights of at least ``min_length`` unless ``max_atoms`` forbids it."""

import numpy as np
import pytest
from ase import Atoms

from aiida_trainspot.augmentation import SupercellParameters, periodic_heights, replicate, supercell_repeats

from .conftest import graphite_cell

pytestmark = pytest.mark.kernel


def image_distance(atoms: Atoms) -> float:
    """Return the shortest distance between an atom and one of its own periodic images (brute force)."""
    shifts = np.array(
        [[i, j, k] for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3) if (i, j, k) != (0,) * 3]
    )
    shifts = shifts[np.all(atoms.pbc | (shifts == 0), axis=1)]
    return float(np.linalg.norm(shifts @ atoms.cell.array, axis=1).min()) if len(shifts) else np.inf


STRUCTURES = {
    'diamond': lambda: Atoms(
        'C2', scaled_positions=[[0, 0, 0], [0.25] * 3], cell=np.full((3, 3), 1.7835) - np.eye(3) * 1.7835, pbc=True
    ),
    'graphite': graphite_cell,
    'slab': lambda: Atoms(
        'Cu2',
        positions=[[0, 0, 0], [1.3, 1.3, 1.8]],
        cell=[[2.55, 0, 0], [1.28, 2.21, 0], [0, 0, 0]],
        pbc=[True, True, False],
    ),
    'molecule': lambda: Atoms('H2O', positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]),
}


@pytest.mark.parametrize('name', STRUCTURES)
@pytest.mark.parametrize(('min_length', 'max_atoms'), [(18.0, 450), (6.0, 450), (18.0, 40)])
def test_supercells_meet_both_limits(name, min_length, max_atoms):
    atoms = STRUCTURES[name]()
    supercell, repeats = replicate(atoms, SupercellParameters(min_length=min_length, max_atoms=max_atoms))
    assert len(supercell) == len(atoms) * np.prod(repeats) <= max_atoms
    assert all(repeat == 1 for repeat, periodic in zip(repeats, atoms.pbc, strict=True) if not periodic)
    heights = periodic_heights(supercell.cell.array, supercell.pbc)
    short = [axis for axis in range(3) if heights[axis] < min_length]
    if short:
        # The axis of smallest height could not grow by one more repeat within the atom budget.
        assert len(supercell) // repeats[np.argmin(heights)] * (repeats[np.argmin(heights)] + 1) > max_atoms
    else:
        assert image_distance(supercell) >= min_length - 1e-9
        # Minimal: one repeat fewer along any replicated axis would be too short.
        for axis in range(3):
            if repeats[axis] > 1:
                assert heights[axis] / repeats[axis] * (repeats[axis] - 1) < min_length


def test_non_orthogonal_cells_grow_by_height_not_by_vector_length():
    atoms = STRUCTURES['diamond']()
    repeats = supercell_repeats(atoms, 10.0, 10_000)
    height = periodic_heights(atoms.cell.array, atoms.pbc)[0]  # 2.06 Å, while the vectors are 2.52 Å long
    assert repeats == (int(np.ceil(10.0 / height)),) * 3


def test_a_structure_larger_than_the_budget_is_refused():
    with pytest.raises(ValueError, match=r'more than `max_atoms` \(2\)'):
        supercell_repeats(STRUCTURES['molecule'](), 18.0, 2)
