"""The parameters dataclasses: the paper's defaults, and bad values rejected with the parameter's name."""

import math

import pytest

from aiida_trainspot.augmentation import (
    AlloyParameters,
    ClusterParameters,
    DistanceFilterParameters,
    DistortionParameters,
    SlabParameters,
    SubstitutionParameters,
    SupercellParameters,
    operation_seed,
    parameters_as_dict,
    parameters_from_mapping,
)

pytestmark = pytest.mark.kernel


def test_defaults_are_those_of_the_trainspot_paper():
    """Section II.1.2 of the paper: 18 Å / 450 atoms, 30 % rattle, −20…+60 % strain, 30 % × 2 vacancies, ..."""
    assert (SupercellParameters().min_length, SupercellParameters().max_atoms) == (18.0, 450)
    distortion = DistortionParameters()
    assert (distortion.rattle_fraction, distortion.max_compressive_strain, distortion.max_tensile_strain) == (
        0.3,
        0.2,
        0.6,
    )
    assert (distortion.vacancy_fraction, distortion.vacancies_per_config) == (0.3, 2)
    assert ClusterParameters().distance == 1.5
    slab = SlabParameters()
    assert slab.miller_indices == ((1, 1, 1), (1, 1, 0), (1, 0, 0))
    assert (slab.min_thickness, slab.max_atoms) == (10.0, 450)
    assert (SubstitutionParameters().structure_fraction, SubstitutionParameters().atom_fraction) == (0.2, 0.2)


@pytest.mark.parametrize(
    ('cls', 'values', 'message'),
    [
        (SupercellParameters, {'min_length': 0}, '`min_length` must be positive'),
        (SupercellParameters, {'max_atoms': -5}, '`max_atoms` must be positive'),
        (SupercellParameters, {'max_atoms': 2.5}, '`max_atoms` must be an integer'),
        (DistortionParameters, {'rattle_fraction': 1.5}, r'`rattle_fraction` must lie in \[0, 1\]'),
        (DistortionParameters, {'max_compressive_strain': 1.0}, r'`max_compressive_strain` must lie in \[0, 1\)'),
        (DistortionParameters, {'vacancy_fraction': -0.1}, '`vacancy_fraction` must lie in'),
        (DistortionParameters, {'n_configs': 0}, '`n_configs` must be positive'),
        (DistortionParameters, {'strain_mode': 'twist'}, '`strain_mode` must be one of'),
        (DistortionParameters, {'rattle_fraction': math.nan}, '`rattle_fraction` must be a finite number'),
        (ClusterParameters, {'distance': -1.5}, '`distance` must be positive'),
        (ClusterParameters, {'distance_factor': 0.9}, '`distance_factor` must be at least 1'),
        (ClusterParameters, {'min_atoms': 5, 'max_atoms': 4}, r'`max_atoms` \(4\) must not be smaller'),
        (SlabParameters, {'min_thickness': 0.0}, '`min_thickness` must be positive'),
        (SlabParameters, {'miller_indices': [[0, 0, 0]]}, '`miller_indices` must hold three integers'),
        (SlabParameters, {'miller_indices': []}, '`miller_indices` must list at least one'),
        (SubstitutionParameters, {'structure_fraction': 1.2}, '`structure_fraction` must lie in'),
        (SubstitutionParameters, {'atom_fraction': 0}, '`atom_fraction` must be positive'),
        (AlloyParameters, {'alloy_species': ['Si', 'Xx']}, r"`alloy_species` has unknown elements \['Xx'\]"),
        (AlloyParameters, {'fixed_species': ['Qq']}, r"`fixed_species` has unknown elements \['Qq'\]"),
        (AlloyParameters, {'alloy_species': ['Si', 'Ge'], 'fixed_species': ['Ge']}, 'share'),
        (AlloyParameters, {'alloy_species': ['Si', 'Ge'], 'compositions': [[0.5, 0.6]]}, 'must sum to 1'),
        (AlloyParameters, {'alloy_species': ['Si', 'Ge'], 'compositions': [[1.5, -0.5]]}, '`compositions` must lie'),
        (AlloyParameters, {'alloy_species': ['Si', 'Ge'], 'compositions': [[1.0]]}, 'one fraction per element'),
        (AlloyParameters, {'alloy_species': 'SiGe'}, '`alloy_species` must be a list'),
        (DistanceFilterParameters, {'covalent_fraction': 0}, '`covalent_fraction` must be positive'),
    ],
)
def test_bad_values_are_rejected_naming_the_parameter(cls, values, message):
    with pytest.raises(ValueError, match=message):
        cls(**values)


def test_mapping_with_unknown_keys_is_rejected_with_their_names():
    with pytest.raises(ValueError, match=r"unknown parameters \['rattle', 'strain'\]"):
        parameters_from_mapping(DistortionParameters, {'rattle': 0.1, 'strain': 0.2, 'n_configs': 3})


def test_mapping_round_trip_keeps_json_types():
    slab = parameters_from_mapping(SlabParameters, {'miller_indices': [[2, 1, 0]]})
    assert slab.miller_indices == ((2, 1, 0),)
    assert parameters_as_dict(slab)['miller_indices'] == [[2, 1, 0]]
    assert parameters_from_mapping(SlabParameters, parameters_as_dict(slab)) == slab


def test_operation_seeds_depend_on_seed_and_name_only():
    assert operation_seed(7, 'clusters') == operation_seed(7, 'clusters')
    assert operation_seed(7, 'clusters') != operation_seed(7, 'slabs')
    assert operation_seed(7, 'clusters') != operation_seed(8, 'clusters')
    with pytest.raises(ValueError, match='`seed` must not be negative'):
        operation_seed(-1, 'clusters')
