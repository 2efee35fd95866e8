"""Geometry for any cell: heights, neighbours, close contacts and vacuum padding, also for non-orthogonal cells."""

import numpy as np
import pytest
from ase import Atoms

from aiida_trainspot.augmentation import (
    cell_problem,
    closest_contact,
    contact_problem,
    nearest_neighbour_distances,
    normal_extents,
    pad_vacuum,
    periodic_heights,
)

pytestmark = pytest.mark.kernel


def gaps_to_images(atoms: Atoms, axis: int) -> float:
    """Return the smallest distance, along the normal of the other two cell vectors, from any atom to any image."""
    normal = np.cross(atoms.cell[axis - 2], atoms.cell[axis - 1])
    normal /= np.linalg.norm(normal)
    heights = atoms.positions @ normal
    shift = atoms.cell[axis] @ normal
    return float(np.min(np.abs(heights[:, None] + shift - heights[None, :])))


def tilted_slab() -> Atoms:
    """Return a 2D-periodic slab with a 60° in-plane angle and a third vector tilted away from the normal."""
    cell = [[3.0, 0.0, 0.0], [1.5, 2.6, 0.0], [1.0, 0.7, 4.0]]
    return Atoms('C3', positions=[[0, 0, 0], [1.2, 0.8, 1.1], [2.0, 1.0, 2.2]], cell=cell, pbc=[True, True, False])


def test_heights_of_a_bulk_cell_are_the_reciprocal_plane_spacings(diamond):
    spacings = 1 / np.linalg.norm(diamond.cell.reciprocal(), axis=1)
    np.testing.assert_allclose(periodic_heights(diamond.cell.array, diamond.pbc), spacings)


def test_heights_of_a_slab_ignore_the_non_periodic_vector():
    slab = tilted_slab()
    area = 3.0 * 2.6  # |a × b|
    expected = [area / np.hypot(1.5, 2.6), area / 3.0, np.inf]  # |a × b| / |b|, |a × b| / |a|
    np.testing.assert_allclose(periodic_heights(slab.cell.array, slab.pbc), expected)
    flattened = slab.cell.array.copy()
    flattened[2] = 0.0
    np.testing.assert_allclose(periodic_heights(flattened, slab.pbc), periodic_heights(slab.cell.array, slab.pbc))


def test_nearest_neighbours_include_periodic_images(diamond):
    np.testing.assert_allclose(nearest_neighbour_distances(diamond), np.sqrt(3) / 4 * 3.567)
    assert np.isinf(nearest_neighbour_distances(Atoms('Ar', positions=[[0, 0, 0]])))[0]


def test_close_contacts_are_found_between_atoms_and_with_own_images():
    dimer = Atoms('H2', positions=[[0, 0, 0], [0, 0, 0.2]])
    assert closest_contact(dimer, 0.5) == (0, 1, pytest.approx(0.2))
    assert closest_contact(Atoms('H2', positions=[[0, 0, 0], [0, 0, 0.74]]), 0.5) is None
    tiny_cell = Atoms('C', positions=[[0, 0, 0]], cell=np.eye(3) * 0.6, pbc=True)
    assert closest_contact(tiny_cell, 0.5)[:2] == (0, 0)
    assert '(H) are 0.200 Å apart' in contact_problem(dimer, 0.5)


def test_unusable_cells_are_named():
    assert cell_problem(Atoms('C', cell=[[2, 0, 0], [0, 0, 0], [0, 0, 2]], pbc=True)) is not None
    assert cell_problem(Atoms('C', cell=[[2, 0, 0], [4, 0, 0], [0, 0, 0]], pbc=[True, False, False])) is not None
    assert cell_problem(Atoms('CH4', pbc=False)) is None


def test_vacuum_of_a_tilted_slab_is_measured_along_the_normal():
    slab = tilted_slab()
    padded = pad_vacuum(slab, 15.0)
    assert gaps_to_images(padded, 2) == pytest.approx(15.0)
    np.testing.assert_allclose(padded.cell[:2], slab.cell[:2])
    # The structure itself is only translated along the normal: in-plane coordinates and distances are unchanged.
    np.testing.assert_allclose(padded.get_all_distances(), slab.get_all_distances(), atol=1e-12)
    again = pad_vacuum(padded, 15.0)
    np.testing.assert_allclose(again.cell, padded.cell)
    np.testing.assert_allclose(again.positions, padded.positions, atol=1e-12)


def test_vacuum_is_never_shrunk_and_the_input_never_changed():
    slab = tilted_slab()
    wide = pad_vacuum(slab, 30.0)
    before = wide.positions.copy(), wide.cell.array.copy()
    padded = pad_vacuum(wide, 15.0)
    assert gaps_to_images(padded, 2) == pytest.approx(30.0)
    np.testing.assert_allclose(wide.positions, before[0])
    np.testing.assert_allclose(wide.cell.array, before[1])


def test_a_molecule_without_cell_gets_a_centred_box(methane):
    padded = pad_vacuum(methane, 15.0)
    extents = np.ptp(methane.positions, axis=0)
    np.testing.assert_allclose(np.diag(padded.cell.array), extents + 15.0)
    np.testing.assert_allclose(padded.positions.min(axis=0) + padded.positions.max(axis=0), np.diag(padded.cell))
    np.testing.assert_allclose(normal_extents(padded), extents, atol=1e-12)
    assert not padded.pbc.any() and not methane.cell.array.any()
