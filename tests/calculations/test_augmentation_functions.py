"""Augmentation calculation functions: per-frame provenance, skip reasons, exact counts, seeds, labels dropped."""

import numpy as np
import pytest
from aiida.orm import Dict, Float, Int, List
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import covalent_radii

from aiida_trainspot.augmentation import normal_extents
from aiida_trainspot.augmentation.geometry import plane_spacings
from aiida_trainspot.calculations.functions.augmentation import (
    augment_alloys,
    augment_clusters,
    augment_distance_filter,
    augment_isolated_atoms,
    augment_rattle_strain,
    augment_slabs,
    augment_substitution,
    augment_supercell,
    augment_vacuum_padding,
)
from aiida_trainspot.data import PESData

pytestmark = pytest.mark.aiida


@pytest.fixture
def structures(aiida_profile):
    """Return diamond (labelled), methane and a lone argon atom."""
    diamond = bulk('C', 'diamond', a=3.567)
    diamond.calc = SinglePointCalculator(diamond, energy=-18.0, forces=np.zeros((2, 3)))
    return PESData.from_ase([diamond, molecule('CH4'), Atoms('Ar', positions=[[0, 0, 0]])]).store()


def test_rattle_strain_frames_record_operation_parameters_and_parent(structures):
    outputs = augment_rattle_strain(structures, Dict({'n_configs': 4}), Int(1))
    frames = list(outputs['structures'].iter_frames())
    assert len(frames) == 8 and [frame.info['parent'] for frame in frames] == [0] * 4 + [1] * 4
    for frame in frames:
        assert frame.origin == 'rattle_strain' and frame.info['operation'] == 'rattle_strain'
        assert not frame.labelled
        assert np.shape(frame.info['parameters']['deformation_gradient']) == (3, 3)
    # round(0.3 × 4) = 1 methane copy loses 2 atoms; diamond's 2 atoms cannot, and the lone atom cannot be rattled.
    assert sorted(frame.natoms for frame in frames[4:]) == [3, 5, 5, 5]
    skipped = outputs['skipped'].get_dict()
    assert skipped['0'] == 'no vacancies: 2 atoms cannot lose 2 to vacancies and keep at least 2'
    assert 'single atom' in skipped['2'] and set(skipped) == {'0', '2'}
    assert outputs['structures'].creator.process_label == 'augment_rattle_strain'


def test_same_seed_same_dataset_other_seed_other_dataset(structures):
    parameters = Dict({'n_configs': 3})
    first = augment_rattle_strain(structures, parameters, Int(1))['structures']
    assert augment_rattle_strain(structures, parameters, Int(1))['structures'].checksum == first.checksum
    assert augment_rattle_strain(structures, parameters, Int(2))['structures'].checksum != first.checksum


def test_supercells_are_the_inputs_without_their_labels(structures):
    outputs = augment_supercell(structures, Dict({'min_length': 6.0}))
    frames = list(outputs['structures'].iter_frames())
    assert [frame.origin for frame in frames] == ['input'] * 3
    assert frames[0].info == {'operation': 'supercell', 'parameters': {'repeats': [3, 3, 3]}, 'parent': 0}
    assert frames[0].natoms == 54 and not frames[0].labelled
    assert [frame.info['parameters']['repeats'] for frame in frames[1:]] == [[1, 1, 1]] * 2


def test_slabs_skip_non_periodic_frames_and_say_why(structures):
    outputs = augment_slabs(structures, Dict({'miller_indices': [[1, 1, 1]], 'max_atoms': 40}), Float(12.0))
    assert len(outputs['structures']) == 1
    assert set(outputs['skipped'].get_dict()) == {'1', '2'}
    assert 'slabs are cut from bulk' in outputs['skipped']['1']
    slab = outputs['structures'].get_frame(0)
    assert slab.origin == 'slab' and slab.info['parameters']['miller_index'] == [1, 1, 1]


def test_substitution_swaps_species_in_the_asked_number_of_frames(aiida_profile):
    salts = [bulk('NaCl', 'rocksalt', a=5.64, cubic=True).repeat((2, 1, 1)) for _ in range(10)]
    dataset = PESData.from_ase([*salts, bulk('Cu', 'fcc', a=3.6)]).store()
    outputs = augment_substitution(dataset, Dict({'structure_fraction': 0.3, 'atom_fraction': 0.25}), Int(0))
    frames = list(outputs['structures'].iter_frames())
    assert len(frames) == 3  # round(0.3 × 10) of the two-element frames
    assert 'single-element' in outputs['skipped']['10']
    for frame in frames:
        parent = salts[frame.info['parent']]
        changed = np.count_nonzero(frame.numbers != parent.numbers)
        assert changed == 2 * round(0.25 * 16 / 2) and sorted(frame.numbers) == sorted(parent.numbers)


def test_alloys_mix_the_free_sites_and_skip_frames_without_any(aiida_profile):
    gaas = bulk('GaAs', 'zincblende', a=5.65, cubic=True)
    dataset = PESData.from_ase([bulk('Si', 'diamond', a=5.43), gaas]).store()
    parameters = {'alloy_species': ['Ga', 'In'], 'fixed_species': ['As', 'Si'], 'n_structures': 5}
    outputs = augment_alloys(dataset, Dict(parameters), Int(0))
    frames = list(outputs['structures'].iter_frames())
    assert [frame.info['parent'] for frame in frames] == [1] * 5
    assert 'every atom belongs to `fixed_species`' in outputs['skipped']['0']
    # Without given compositions, two species are mixed at Ga fractions 0, 1/4, ..., 1 of the 4 free sites.
    assert [int((frame.numbers == 31).sum()) for frame in frames] == [0, 1, 2, 3, 4]
    for frame in frames:
        np.testing.assert_array_equal(frame.numbers[gaas.numbers == 33], 33)
        assert frame.origin == 'alloy'


def test_isolated_atoms_cover_the_elements_to_come(structures):
    outputs = augment_isolated_atoms(structures, Float(12.0), List(['Ge']))
    frames = list(outputs['structures'].iter_frames())
    assert sorted(int(frame.numbers[0]) for frame in frames) == [1, 6, 18, 32]
    assert all(frame.origin == 'isolated_atom' and frame.info['parent'] is None for frame in frames)
    np.testing.assert_allclose(frames[0].cell, np.eye(3) * 12.0)


def test_clusters_come_from_the_elements_of_the_dataset(structures):
    outputs = augment_clusters(structures, Dict({'n_clusters': 6, 'max_atoms': 4}), Int(3))
    frames = list(outputs['structures'].iter_frames())
    assert len(frames) == 6 and all(2 <= frame.natoms <= 4 for frame in frames)
    assert {int(number) for frame in frames for number in frame.numbers} <= {1, 6, 18}


def test_vacuum_padding_keeps_the_metadata_and_leaves_bulk_alone(structures):
    generated = augment_rattle_strain(structures, Dict({'n_configs': 1}), Int(0))['structures']
    padded = augment_vacuum_padding(generated, Float(15.0))['structures']
    for before, after in zip(generated.iter_frames(), padded.iter_frames(), strict=True):
        assert (after.origin, after.info) == (before.origin, before.info)
        if after.pbc.all():
            np.testing.assert_array_equal(after.cell, before.cell)
            continue
        atoms = Atoms(numbers=after.numbers, positions=after.positions, cell=after.cell, pbc=after.pbc)
        np.testing.assert_allclose(plane_spacings(after.cell) - normal_extents(atoms), 15.0)


def test_distance_filter_drops_overlapping_frames_and_names_the_atoms(aiida_profile):
    close = Atoms('CO', positions=[[0, 0, 0], [0, 0, 0.5]])
    dataset = PESData.from_ase([molecule('CO'), close, molecule('H2O')]).store()
    outputs = augment_distance_filter(dataset, Dict({'covalent_fraction': 0.5}))
    assert [frame.natoms for frame in outputs['structures'].iter_frames()] == [2, 3]
    limit = 0.5 * (covalent_radii[6] + covalent_radii[8])
    reason = (
        f'atoms 0 (C) and 1 (O) are 0.500 Å apart, closer than 0.5 × the sum of their covalent radii ({limit:.3f} Å)'
    )
    assert outputs['skipped'].get_dict() == {'1': reason}


@pytest.mark.parametrize(
    ('function', 'parameters', 'message'),
    [
        (augment_clusters, {'distance': -1.0}, '`distance` must be positive'),
        (augment_rattle_strain, {'rattle': 0.1}, r"unknown parameters \['rattle'\]"),
        (augment_alloys, {'alloy_species': ['Si', 'Xx']}, r"`alloy_species` has unknown elements \['Xx'\]"),
    ],
)
def test_bad_parameters_are_refused_naming_them(structures, function, parameters, message):
    with pytest.raises(ValueError, match=message):
        function(structures, Dict(parameters), Int(0))
