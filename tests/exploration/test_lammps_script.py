"""The LAMMPS inputs and outputs of the ``lammps`` driver: one species list, ensembles, snapshots of the ML styles."""

import os
import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import graphene, molecule
from ase.data import atomic_masses, atomic_numbers

from aiida_trainspot.exploration.lammps_output import frames_from_lammps_output
from aiida_trainspot.exploration.lammps_script import (
    PairStyle,
    atom_types,
    data_file,
    md_script,
    pair_lines,
    pair_style_error,
    species_error,
)

pytestmark = pytest.mark.kernel

SNAPSHOTS = Path(__file__).parent / 'snapshots'
NVT = {'ensemble': 'nvt', 'temperature': 500.0, 'steps': 200, 'thermalisation': 50, 'stride': 10, 'seed': 4}
NPT = {**NVT, 'ensemble': 'npt', 'pressure': 1.5, 'timestep': 0.5}
TERSOFF = PairStyle('tersoff', 'SiC.tersoff')


def command(script: str, name: str) -> list[str]:
    """Return the lines of ``script`` that start with the command ``name``."""
    return [line for line in script.splitlines() if line.split()[:1] == [name]]


def data_types(data: str) -> list[int]:
    """Return the atom type of each atom of a LAMMPS data file, in the order of the atoms."""
    atoms = data.split('Atoms # atomic')[1].split()
    return [int(value) for value in atoms[1::5]]


def test_types_masses_and_pair_coeff_follow_one_species_list():
    species = ['C', 'H', 'O']
    positions = np.random.default_rng(0).uniform(0, 6, (5, 3))
    structure = Atoms('OHCOC', positions=positions)  # not in the order of the species list
    assert atom_types(species) == {'C': 1, 'H': 2, 'O': 3}
    types = data_types(data_file(structure, species))
    assert [species[index - 1] for index in types] == structure.get_chemical_symbols()
    for pair in (TERSOFF, PairStyle('mace', 'm.model-lammps.pt'), PairStyle('metatomic', 'model.pt')):
        lines = pair_lines(species, pair)
        masses = [line.split() for line in lines if line.startswith('mass')]
        assert [(int(words[1]), words[-1]) for words in masses] == [(1, 'C'), (2, 'H'), (3, 'O')]
        assert [float(words[2]) for words in masses] == pytest.approx(
            [atomic_masses[atomic_numbers[s]] for s in species]
        )
        coefficients = lines[-1].split()
        expected = ['6', '1', '8'] if pair.name == 'metatomic' else species
        assert coefficients[-3:] == expected, lines[-1]


def test_npt_barostat_acts_on_periodic_dimensions_only():
    slab = md_script(NPT, [True, True, False], ['C'], TERSOFF)
    assert command(slab, 'boundary') == ['boundary p p m']
    assert (
        command(slab, 'fix')[0] == 'fix integrate all npt temp 500 500 0.1 x 15000 15000 1 y 15000 15000 1 couple none'
    )
    bulk_script = md_script(NPT, [True, True, True], ['C'], TERSOFF)
    (barostat,) = [line for line in command(bulk_script, 'fix') if ' npt ' in line]
    assert re.findall(r' ([xyz]) 15000 15000 1', barostat) == ['x', 'y', 'z']
    assert command(bulk_script, 'timestep') == ['timestep 0.0005']


def test_nvt_is_langevin_and_a_molecule_loses_its_rotation():
    script = md_script(NVT, [False, False, False], ['C', 'H'], TERSOFF)
    assert command(script, 'boundary') == ['boundary m m m']
    assert command(script, 'velocity') == ['velocity all create 500 5 dist gaussian mom yes rot yes']
    fixes = command(script, 'fix')
    assert fixes[:2] == ['fix integrate all nve', 'fix thermostat all langevin 500 500 0.1 6 zero yes']
    assert 'rot no' in md_script(NVT, [True, True, True], ['C'], TERSOFF)


def test_thermalisation_is_not_dumped_and_frames_follow_the_stride():
    script = md_script(NVT, [True, True, True], ['C'], TERSOFF)
    lines = script.splitlines()
    dump = lines.index('dump frames all custom 10 frames.dump id type x y z fx fy fz')
    assert lines.index('run 50') < lines.index('reset_timestep 0') < dump < lines.index('run 150')
    assert 'delay 1' in lines[dump + 1]
    assert 'reset_timestep' not in md_script({**NVT, 'thermalisation': 0}, [True] * 3, ['C'], TERSOFF)


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        ((NPT, [False] * 3, ['C'], TERSOFF), 'npt needs a structure periodic in at least one direction'),
        (({**NVT, 'pressure': 1.0}, [False] * 3, ['C'], TERSOFF), '`pressure` is only used by the `npt` ensemble'),
        ((NVT, [True] * 3, ['C'], PairStyle('lj/cut', 'x')), "unknown pair style 'lj/cut'"),
        ((NVT, [True] * 3, ['C'], PairStyle('tersoff', 'a b')), "`filename` must be words .* got \\['a b'\\]"),
        ((NVT, [True] * 3, ['C'], PairStyle('airebo', 'CH.airebo', '3.0 $x')), "got \\['\\$x'\\]"),
        ((NVT, [True] * 3, ['C', 'C'], TERSOFF), 'distinct chemical symbols'),
        (({**NVT, 'uncertainty_stop': {'threshold': 0.1, 'every': 5}}, [True] * 3, ['C'], TERSOFF), 'committee'),
        (({**NVT, 'steps': 0}, [True] * 3, ['C'], TERSOFF), '`steps` must be a positive integer'),
    ],
)
def test_bad_inputs_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        md_script(*arguments)


def test_species_not_covered_are_named():
    assert species_error(['C', 'H', 'O', 'H'], ['C']) == (
        "the structure has species ['H', 'O'] that the potential does not cover (its species: ['C'])"
    )
    assert species_error(['C'], ['C', 'Si']) is None
    assert pair_style_error(PairStyle('mace', 'm.pt', '3.0')) == "pair style `mace` takes no extra arguments, got '3.0'"


def test_boxes_for_molecules_and_slabs():
    water = data_file(molecule('H2O'), ['H', 'O'])
    bounds = [line.split()[:2] for line in water.splitlines() if line.endswith(('xhi', 'yhi', 'zhi'))]
    assert all(float(low) == 0 and float(high) >= 20 for low, high in bounds), bounds
    with pytest.raises(ValueError, match='cell is singular'):
        data_file(Atoms('C2', positions=[[0, 0, 0], [1.4, 0, 0]], pbc=[True, False, False]), ['C'])
    slab = data_file(graphene(vacuum=6.0), ['C'])
    assert '-1.23 ' in slab.split('xy xz yz')[0], 'the hexagonal cell keeps its tilt'


@pytest.mark.parametrize(
    ('name', 'pair', 'species', 'spec', 'pbc'),
    [
        ('mace_npt_slab.in', PairStyle('mace', 'mace.model-lammps.pt'), ['Mo', 'S'], NPT, [True, True, False]),
        ('metatomic_nvt_molecule.in', PairStyle('metatomic', 'pet.pt'), ['H', 'C', 'O'], NVT, [False] * 3),
    ],
)
def test_ml_pair_style_scripts_match_their_snapshots(name, pair, species, spec, pbc):
    """No LAMMPS here has these styles: the script written is compared with the checked-in one."""
    script = md_script(spec, pbc, species, pair)
    if os.environ.get('TRAINSPOT_UPDATE_SNAPSHOTS'):
        (SNAPSHOTS / name).write_text(script)
    assert script == (SNAPSHOTS / name).read_text()


DUMP = """ITEM: TIMESTEP
10
ITEM: NUMBER OF ATOMS
3
ITEM: BOX BOUNDS xy xz yz pp pp mm
0 5 0
0 5 0
0 12 0
ITEM: ATOMS id type x y z fx fy fz
2 1 1 1 6 0.1 0 0
1 3 0 0 6 0 0 0
3 2 2 2 6 0 0 -0.1
"""


def test_frames_come_back_with_species_from_the_type_map():
    spec = {'thermalisation': 50, 'timestep': 0.5, 'iteration': 3}
    (frame,) = frames_from_lammps_output(DUMP, '# step pe temp\n0 -1 0\n10 -2.5 310.0\n', ['Mo', 'S', 'W'], spec)
    assert frame.numbers.tolist() == [74, 42, 16], 'sorted by id; type k is species[k - 1]'
    assert frame.pbc.tolist() == [True, True, False]
    assert np.allclose(np.diag(frame.cell), [5, 5, 12])
    assert (frame.origin, frame.iteration, frame.energy, frame.forces) == ('md', 3, None, None)
    assert frame.info == {'run': 0, 'step': 60, 'time_fs': 30.0, 'temperature': 310.0}
    assert frame.frame_arrays['driver_energy'] == -2.5
    assert frame.atom_arrays['driver_forces'][1].tolist() == [0.1, 0, 0]
    with pytest.raises(ValueError, match="atom type beyond the 2 species \\['Mo', 'S'\\]"):
        frames_from_lammps_output(DUMP, '10 -2.5 310.0\n', ['Mo', 'S'], spec)
    with pytest.raises(ValueError, match='no line for the dumped step 10'):
        frames_from_lammps_output(DUMP, '20 -2.5 310.0\n', ['Mo', 'S', 'W'], spec)


def test_a_molecule_frame_has_no_cell():
    dump = DUMP.replace('pp pp mm', 'mm mm mm')
    (frame,) = frames_from_lammps_output(dump, '10 -2.5 310.0\n', ['Mo', 'S', 'W'], {**NVT, 'iteration': 0})
    assert not frame.pbc.any() and not frame.cell.any()
