"""Isolated atoms, species swaps (fraction and composition as asked) and alloys (compositions, fixed species)."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aiida_trainspot.augmentation import (
    AlloyParameters,
    NotApplicableError,
    alloy_compositions,
    isolated_atoms,
    make_alloy,
    site_counts,
    swap_species,
)

pytestmark = pytest.mark.kernel


def test_one_isolated_atom_per_element_centred_in_a_box():
    atoms = isolated_atoms([6, 1, 6, 8], 15.0)
    assert [int(a.numbers[0]) for a in atoms] == [1, 6, 8]
    for atom in atoms:
        assert len(atom) == 1 and not atom.pbc.any()
        np.testing.assert_allclose(atom.cell.array, np.eye(3) * 15.0)
        np.testing.assert_allclose(atom.positions[0], [7.5] * 3)


@pytest.mark.parametrize('fraction', [0.05, 0.2, 0.5])
def test_swaps_change_the_asked_fraction_of_atoms_and_keep_the_composition(rocksalt, rng, fraction):
    swapped, pairs = swap_species(rocksalt, fraction, rng)
    changed = np.flatnonzero(swapped.numbers != rocksalt.numbers)
    assert abs(len(changed) - fraction * len(rocksalt)) <= 1  # rounded to the even number a swap can reach
    assert len(changed) % 2 == 0 and sorted(changed) == sorted(pairs.ravel())
    assert sorted(swapped.numbers) == sorted(rocksalt.numbers)
    np.testing.assert_array_equal(swapped.positions, rocksalt.positions)
    assert all(rocksalt.numbers[first] != rocksalt.numbers[second] for first, second in pairs)


def test_swaps_are_limited_by_the_minority_element(rng):
    atoms = Atoms('Si9Ge', positions=np.arange(30).reshape(10, 3) * 2.0)
    swapped, pairs = swap_species(atoms, 1.0, rng)
    assert len(pairs) == 1 and (swapped.numbers != atoms.numbers).sum() == 2


def test_a_pure_element_cannot_be_swapped(diamond, rng):
    with pytest.raises(NotApplicableError, match='single-element'):
        swap_species(diamond, 0.2, rng)


def test_site_counts_are_the_closest_integers():
    counts = site_counts(np.array([0.15, 0.35, 0.5]), 7)
    assert counts.sum() == 7 and np.all(np.abs(counts - np.array([0.15, 0.35, 0.5]) * 7) < 1)
    np.testing.assert_array_equal(site_counts(np.array([0.25, 0.75]), 64), [16, 48])


def test_alloys_have_the_asked_composition_and_fixed_species_untouched(rng):
    gaas = bulk('GaAs', 'zincblende', a=5.65, cubic=True).repeat(2)
    parameters = AlloyParameters(alloy_species=('Ga', 'In'), fixed_species=('As',), compositions=((0.3, 0.7),))
    alloy, drawn = make_alloy(gaas, parameters, np.array([0.3, 0.7]), rng)
    arsenic = gaas.numbers == 33
    np.testing.assert_array_equal(alloy.numbers[arsenic], gaas.numbers[arsenic])
    np.testing.assert_array_equal(alloy.positions, gaas.positions)
    mixed = alloy.numbers[~arsenic]
    assert (mixed == 31).sum() == round(0.3 * 32) and (mixed == 49).sum() == 32 - round(0.3 * 32)
    assert drawn['counts'] == {'Ga': 10, 'In': 22}


def test_alloys_of_fixed_species_only_do_not_apply(rng):
    parameters = AlloyParameters(alloy_species=('Si', 'Ge'), fixed_species=('C',))
    with pytest.raises(NotApplicableError, match='every atom belongs to `fixed_species`'):
        make_alloy(bulk('C', 'diamond', a=3.567), parameters, np.array([0.5, 0.5]), rng)


def test_compositions_span_zero_to_one_when_none_given(rng):
    binary = alloy_compositions(AlloyParameters(alloy_species=('Si', 'Ge')), 5, rng)
    np.testing.assert_allclose(binary[:, 0], [0, 0.25, 0.5, 0.75, 1])
    ternary = alloy_compositions(AlloyParameters(alloy_species=('Si', 'Ge', 'Sn')), 200, rng)
    np.testing.assert_allclose(ternary.sum(axis=1), 1)
    assert ternary.min() < 0.02 and ternary.max() > 0.9
    given = alloy_compositions(
        AlloyParameters(alloy_species=('Si', 'Ge'), compositions=((0.1, 0.9), (0.6, 0.4))), 3, rng
    )
    np.testing.assert_allclose(given, [[0.1, 0.9], [0.6, 0.4], [0.1, 0.9]])
