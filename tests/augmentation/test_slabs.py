"""Slabs: the asked plane, thick enough (or at the atom budget), vacuum on the open side, only from bulk."""

import numpy as np
import pytest

from aiida_trainspot.augmentation import (
    NotApplicableError,
    SlabParameters,
    normal_extents,
    periodic_heights,
    slab_thickness,
    slabs,
)

pytestmark = pytest.mark.kernel


def reciprocal_norm(bulk, miller_index):
    """Return |G| of the plane (hkl) of the bulk lattice: 1 / the spacing between its lattice planes."""
    return np.linalg.norm(np.asarray(miller_index) @ bulk.cell.reciprocal())


@pytest.mark.parametrize('name', ['diamond_cubic', 'graphite'])
def test_slabs_are_thick_enough_with_vacuum_on_the_open_side(request, name):
    bulk = request.getfixturevalue(name)
    parameters = SlabParameters()
    products, reasons = slabs(bulk, parameters, vacuum=15.0)
    assert reasons == [] and len(products) == 3
    for (slab, built), miller_index in zip(products, parameters.miller_indices, strict=True):
        assert built['miller_index'] == list(miller_index)
        assert slab.pbc.tolist() == [True, True, False] and len(slab) <= 450
        per_layer = len(slab) // (built['layers'] * np.prod(built['repeats']))
        assert slab_thickness(slab) >= 10.0 or per_layer * (built['layers'] + 1) > 450
        assert slab_thickness(slab) == pytest.approx(built['thickness'])
        gap = abs(np.linalg.det(slab.cell.array)) / np.linalg.norm(np.cross(*slab.cell[:2])) - normal_extents(slab)[2]
        assert gap == pytest.approx(15.0)
        # The surface cell is a cell of the plane (hkl): its area per repeat is V |G| of the bulk lattice.
        area = np.linalg.norm(np.cross(*slab.cell[:2])) / np.prod(built['repeats'])
        assert area == pytest.approx(bulk.cell.volume * reciprocal_norm(bulk, miller_index))
        assert per_layer == len(bulk)
        heights = periodic_heights(slab.cell.array, slab.pbc)[:2]
        shortest = int(np.argmin(heights))
        assert heights.min() >= 18.0 or len(slab) // built['repeats'][shortest] * (built['repeats'][shortest] + 1) > 450


def test_the_atom_budget_limits_the_thickness(diamond_cubic):
    ((slab, built),) = slabs(diamond_cubic, SlabParameters(miller_indices=[[1, 0, 0]], max_atoms=24), 15.0)[0]
    assert len(slab) == 24 and built['layers'] == 3 and built['thickness'] < 10.0


def test_slabs_apply_to_bulk_structures_only(methane, diamond_cubic):
    with pytest.raises(NotApplicableError, match='slabs are cut from bulk'):
        slabs(methane, SlabParameters(), 15.0)
    slab = slabs(diamond_cubic, SlabParameters(miller_indices=[[1, 1, 1]]), 15.0)[0][0][0]
    with pytest.raises(NotApplicableError, match=r'pbc is \[True, True, False\]'):
        slabs(slab, SlabParameters(), 15.0)


def test_planes_with_too_many_atoms_per_layer_are_skipped_with_a_reason(diamond_cubic):
    """One layer of :func:`ase.build.surface` holds the atoms of one bulk cell: 8 here, above a budget of 7."""
    products, reasons = slabs(diamond_cubic, SlabParameters(miller_indices=[[1, 0, 0], [2, 1, 0]], max_atoms=7), 15.0)
    assert products == []
    assert reasons == [f'one {index} layer has 8 atoms, more than `max_atoms` (7)' for index in [(1, 0, 0), (2, 1, 0)]]
