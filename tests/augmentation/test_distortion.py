"""Strain within bounds and only along periodic axes, an unbiased rattle, exact vacancy counts, seeded draws."""

import numpy as np
import pytest
from ase import Atoms

from aiida_trainspot.augmentation import (
    DistortionParameters,
    NotApplicableError,
    deform,
    distortions,
    nearest_neighbour_distances,
    normal_extents,
    rattle,
    strain_deformation,
)

pytestmark = pytest.mark.kernel

LOW, HIGH = 0.8, 1.6


def tilted_slab() -> Atoms:
    """Return a 2D-periodic slab whose third vector is tilted away from the normal."""
    cell = [[2.5, 0.0, 0.0], [1.25, 2.165, 0.0], [0.8, 0.5, 20.0]]
    return Atoms('C3', positions=[[0, 0, 8], [1.2, 0.7, 9.1], [2.0, 1.0, 10.2]], cell=cell, pbc=[True, True, False])


def test_rattle_is_isotropic_and_unbiased(diamond, rng):
    """The reference rattle pushed every atom into the +x+y+z octant; ours has zero mean and all octants equally."""
    supercell = diamond.repeat(6)
    displacements = np.concatenate([rattle(supercell, 0.3, rng)[1] for _ in range(10)])
    count = len(displacements)
    standard_error = displacements.std(axis=0) / np.sqrt(count)
    assert np.all(np.abs(displacements.mean(axis=0)) < 4 * standard_error)
    octants = np.unique(displacements > 0, axis=0, return_counts=True)[1]
    assert len(octants) == 8
    assert np.all(np.abs(octants / count - 1 / 8) < 0.02)


def test_rattle_moves_each_atom_by_at_most_the_fraction_of_its_neighbour_distance(graphite, rng):
    supercell = graphite.repeat((3, 3, 2))
    nearest = nearest_neighbour_distances(supercell)
    before = supercell.positions.copy()
    rattled, displacements = rattle(supercell, 0.3, rng)
    lengths = np.linalg.norm(displacements, axis=1)
    assert np.all(lengths <= 0.3 * nearest + 1e-12)
    assert lengths.max() > 0.25 * nearest.min()  # uniform in [0, 0.3 d]: the top of the range is reached
    np.testing.assert_allclose(rattled.positions - before, displacements)
    np.testing.assert_array_equal(supercell.positions, before)


def test_rattle_does_not_apply_to_a_single_atom(rng):
    with pytest.raises(NotApplicableError, match='single atom'):
        rattle(Atoms('Ar', positions=[[0, 0, 0]]), 0.3, rng)


@pytest.mark.parametrize('mode', ['isotropic', 'anisotropic', 'shear'])
def test_strain_of_a_bulk_stays_within_bounds(diamond, rng, mode):
    parameters = DistortionParameters(strain_mode=mode)
    stretches = []
    for _ in range(200):
        deformation = strain_deformation(diamond.cell.array, diamond.pbc, parameters, rng)
        if mode == 'shear':
            np.testing.assert_allclose(deformation, deformation.T, atol=1e-12)
            stretches.append(np.linalg.eigvalsh(deformation))
        else:
            strained = deform(diamond, deformation)
            ratios = strained.cell.lengths() / diamond.cell.lengths()
            stretches.append(ratios)
            assert np.ptp(ratios) < 1e-12 if mode == 'isotropic' else np.ptp(ratios) > 1e-6
            np.testing.assert_allclose(strained.get_scaled_positions(), diamond.get_scaled_positions(), atol=1e-12)
    stretches = np.array(stretches)
    assert stretches.min() >= LOW and stretches.max() <= HIGH
    assert stretches.min() < LOW + 0.05 and stretches.max() > HIGH - 0.05  # the whole range is sampled


@pytest.mark.parametrize('mode', ['isotropic', 'anisotropic', 'shear'])
def test_strain_never_stretches_the_vacuum_of_a_slab(rng, mode):
    slab = tilted_slab()
    normal = np.cross(slab.cell[0], slab.cell[1])
    normal /= np.linalg.norm(normal)
    for _ in range(20):
        deformation = strain_deformation(slab.cell.array, slab.pbc, DistortionParameters(strain_mode=mode), rng)
        np.testing.assert_allclose(deformation @ normal, normal, atol=1e-12)
        strained = deform(slab, deformation)
        np.testing.assert_allclose(normal_extents(strained)[2], normal_extents(slab)[2], atol=1e-12)
        np.testing.assert_allclose(strained.positions @ normal, slab.positions @ normal, atol=1e-12)


def test_a_molecule_is_never_strained(methane, rng):
    deformation = strain_deformation(methane.cell.array, methane.pbc, DistortionParameters(strain_mode='shear'), rng)
    np.testing.assert_array_equal(deformation, np.eye(3))


def test_vacancy_counts_are_exact(diamond, rng):
    supercell = diamond.repeat(3)
    parameters = DistortionParameters(n_configs=20, vacancy_fraction=0.3, vacancies_per_config=2)
    products = distortions(supercell, parameters, rng)
    sizes = [len(atoms) for atoms, _ in products]
    assert len(products) == 20
    assert sizes.count(len(supercell) - 2) == 6 and sizes.count(len(supercell)) == 14
    for atoms, drawn in products:
        assert len(drawn['removed_atoms']) == len(supercell) - len(atoms)
        assert len(set(drawn['removed_atoms'])) == len(drawn['removed_atoms'])


def test_too_small_structures_keep_their_atoms_and_say_why(rng):
    dimer = Atoms('N2', positions=[[0, 0, 0], [0, 0, 1.1]])
    products = distortions(dimer, DistortionParameters(n_configs=4, vacancy_fraction=1.0), rng)
    assert all(len(atoms) == 2 and 'cannot lose 2' in drawn['vacancies_skipped'] for atoms, drawn in products)


def test_same_seed_same_structures_other_seed_other_structures(graphite):
    parameters = DistortionParameters(n_configs=5, strain_mode='shear', vacancy_fraction=0.0)

    def positions(seed):
        return [atoms.positions for atoms, _ in distortions(graphite, parameters, np.random.default_rng(seed))]

    assert all(np.array_equal(a, b) for a, b in zip(positions(1), positions(1), strict=True))
    assert not any(np.allclose(a, b) for a, b in zip(positions(1), positions(2), strict=True))
