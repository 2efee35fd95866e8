"""Calculator specs are checked before anything runs, naming what is wrong; LAMMPS is started without a shell."""

import os
import shlex
import shutil

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, graphene

from aiida_trainspot.runners.calculators import (
    LAMMPS_MARGIN,
    ReferenceLammps,
    build_calculator,
    placed_in_lammps_box,
    validate_calculator_spec,
)

TERSOFF = '/usr/share/lammps/potentials/SiC.tersoff'


def lammps_spec(**parameters):
    return {
        'name': 'lammps',
        'parameters': {'pair_style': 'tersoff', 'pair_coeff': ['* * SiC.tersoff C'], **parameters},
    }


@pytest.mark.kernel
def test_valid_specs_are_completed():
    assert validate_calculator_spec({'name': 'emt'}) == {'name': 'emt', 'parameters': {}}
    lennard_jones = validate_calculator_spec({'name': 'lennard_jones', 'parameters': {'sigma': 2, 'rc': 6.0}})
    assert lennard_jones['parameters'] == {'sigma': 2.0, 'rc': 6.0}
    assert isinstance(lennard_jones['parameters']['sigma'], float)
    tersoff = validate_calculator_spec(lammps_spec(potential_files=[TERSOFF]))
    assert tersoff['parameters']['specorder'] == ['C'], 'the atom types are the elements the pair_coeff names'
    silicon_carbide = validate_calculator_spec(lammps_spec(pair_coeff=['* * SiC.tersoff Si C']))
    assert silicon_carbide['parameters']['specorder'] == ['Si', 'C']
    explicit = validate_calculator_spec(lammps_spec(pair_coeff=['* * SiC.tersoff C Si'], specorder=['C', 'Si']))
    assert explicit['parameters']['specorder'] == ['C', 'Si']


@pytest.mark.parametrize(
    ('spec', 'message'),
    [
        ([('name', 'emt')], 'must be a mapping'),
        ({'name': 'emt', 'cutoff': 3}, r"unknown keys \['cutoff'\]"),
        ({'name': 'pw'}, r"unknown calculator `name` 'pw': choose from \['emt', 'lammps', 'lennard_jones', 'morse'\]"),
        ({'name': 'emt', 'parameters': [1]}, '`parameters` must be a mapping'),
        ({'name': 'lennard_jones', 'parameters': {'sigma': 1, 'cutof': 3}}, r"unknown parameters \['cutof'\]"),
        ({'name': 'lennard_jones', 'parameters': {'sigma': -1.0}}, r'`parameters.sigma` must be a positive number'),
        ({'name': 'lennard_jones', 'parameters': {'epsilon': True}}, r'`parameters.epsilon` must be a positive'),
        ({'name': 'lennard_jones', 'parameters': {'rc': float('inf')}}, r'`parameters.rc` must be a positive'),
        ({'name': 'lennard_jones', 'parameters': {'sigma': 2.0, 'ro': 6.0}}, r'`parameters.ro` \(6.0\).*\(6.0\)'),
        ({'name': 'lennard_jones', 'parameters': {'smooth': 'yes'}}, r'`parameters.smooth` must be true or false'),
        ({'name': 'morse', 'parameters': {'rcut1': 3.0}}, r'`parameters.rcut1` \(3.0\) must be below'),
        ({'name': 'emt', 'parameters': {'asap_cutoff': 1}}, r'`parameters.asap_cutoff` must be true or false'),
        ({'name': 'lammps', 'parameters': {'pair_style': 'tersoff'}}, r"requires the parameters \['pair_coeff'\]"),
        (lammps_spec(pair_coeff='* * SiC.tersoff C'), r'`parameters.pair_coeff` must be a non-empty list'),
        (lammps_spec(pair_coeff=['* * SiC.tersoff C\nshell touch x']), r'`parameters.pair_coeff\[0\]` must be'),
        (lammps_spec(pair_style='tersoff ${x}'), r'`parameters.pair_style` must be LAMMPS arguments'),
        (lammps_spec(pair_coeff=['* * SiC.tersoff C # comment']), r'`parameters.pair_coeff\[0\]`'),
        (lammps_spec(potential_files=['SiC.tersoff']), r'`parameters.potential_files\[0\]` must be an absolute'),
        (lammps_spec(potential_files=[TERSOFF, '/opt/potentials/SiC.tersoff']), 'two files of the same name'),
        (lammps_spec(specorder=['C', 'Xx']), r'`parameters.specorder\[1\]` must be a chemical symbol'),
        (lammps_spec(executable='lmp -in x'), r'`parameters.executable` must be a program name'),
        (lammps_spec(pair_style='lj/cut 2.5', pair_coeff=['1 1 0.01 3.4']), '`parameters.specorder` is required'),
    ],
)
@pytest.mark.kernel
def test_invalid_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        validate_calculator_spec(spec)


@pytest.mark.kernel
def test_build_checks_this_computer(tmp_path):
    missing = str(tmp_path / 'C.tersoff')
    with pytest.raises(ValueError, match=r"`parameters.potential_files` \['.*C.tersoff'\] do not exist"):
        build_calculator(validate_calculator_spec(lammps_spec(potential_files=[missing])))
    with pytest.raises(ValueError, match=r"`parameters.executable` 'no-such-lammps' is not a program"):
        build_calculator(validate_calculator_spec(lammps_spec(executable='no-such-lammps')))


@pytest.mark.kernel
def test_placed_in_lammps_box_only_translates():
    molecule = Atoms('C3', positions=[[-1.3, 0, 0], [0, 0, 0], [1.3, 0.1, -0.2]])
    placed = placed_in_lammps_box(molecule)
    np.testing.assert_allclose(placed.positions.min(axis=0), [LAMMPS_MARGIN] * 3)
    np.testing.assert_allclose(placed.get_all_distances(), molecule.get_all_distances(), atol=1e-12)
    sheet = graphene(vacuum=6.0)
    sheet.positions[:, 2] = -3.0
    placed = placed_in_lammps_box(sheet)
    np.testing.assert_allclose(placed.positions[:, 2], sheet.cell[2, 2] / 2)
    np.testing.assert_allclose(placed.positions[:, :2], sheet.positions[:, :2])
    crystal = bulk('C', 'diamond', a=3.567)
    np.testing.assert_array_equal(placed_in_lammps_box(crystal).positions, crystal.positions)


@pytest.mark.real
def test_lammps_command_reaches_no_shell(tmp_path):
    """An executable path full of shell syntax is run as it is: nothing in it is interpreted."""
    folder = tmp_path / 'a b;$(touch pwned)'
    folder.mkdir()
    executable = folder / 'lmp'
    executable.symlink_to(shutil.which('lmp'))
    calculator = ReferenceLammps(
        executable=str(executable),
        files=[TERSOFF],
        pair_style='tersoff',
        pair_coeff=['* * SiC.tersoff C'],
        specorder=['C'],
    )
    try:
        command = shlex.split(calculator.get_lammps_command())
        assert command[1:4] == [
            'OMP_NUM_THREADS=1',
            f'LAMMPS_POTENTIALS={calculator.parameters["tmp_dir"]}',
            str(executable),
        ]
        diamond = bulk('C', 'diamond', a=3.566)
        diamond.calc = calculator
        assert diamond.get_potential_energy() / len(diamond) == pytest.approx(-7.37, abs=0.05)
    finally:
        calculator.clean()
    assert not (tmp_path / 'pwned').exists()
    assert not os.path.exists('pwned')
