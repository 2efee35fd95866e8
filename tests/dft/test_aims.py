"""FHI-aims inputs written on FHI-aims' species-file layout, outputs parsed from the real ``aims.out`` files ASE ships.

FHI-aims cannot run here. The ``aims.out`` files are those of ASE's own test data (``ase/test/testdata/aims``, LGPL-2.1,
installed with ASE); the expected values are read from their text by the small grep-like helpers below, independently
of ASE's reader that the parser uses.
"""

import io
import re
import shutil
import warnings
from pathlib import Path

import ase
import numpy as np
import pytest
from ase.build import bulk, graphene, molecule
from ase.io.aims import read_aims

from aiida_trainspot.dft.aims import (
    AimsFailure,
    check_parameters,
    control_text,
    geometry_text,
    labelling_keywords,
    parse_aims_output,
    read_species_defaults,
)

pytestmark = pytest.mark.kernel

SPECIES_DEFAULTS = Path(__file__).parent / 'data' / 'species_defaults' / 'defaults_2020'
ASE_AIMS_OUTPUTS = Path(ase.__file__).parent / 'test' / 'testdata' / 'aims'
PARAMETERS = {
    'xc': 'pbe',
    'relativistic': ['atomic_zora', 'scalar'],
    'spin': 'none',
    'sc_accuracy_rho': 1e-6,
    'override_illconditioning': False,
    'output': [['mulliken'], ['hirshfeld']],
}


def aims_output(name: str) -> str:
    return (ASE_AIMS_OUTPUTS / name).read_text()


def keyword_lines(text: str) -> list[list[str]]:
    """Return the keyword lines of a ``control.in`` text (before the first species block), split at the first blank."""
    head = text.split('####', 1)[0]
    return [line.split(maxsplit=1) for line in head.splitlines() if line.strip() and not line.startswith('#')]


def last_free_energy(text: str) -> float:
    """Return the value of the last ``| Electronic free energy : <x> eV`` line (the final, eV-only form)."""
    lines = re.findall(r'\| Electronic free energy\s+:\s+(\S+) eV', text)
    return float(lines[-1])


def last_force_block(text: str) -> np.ndarray:
    """Return the forces under the last ``Total atomic forces`` header."""
    block = text.rsplit('Total atomic forces', maxsplit=1)[-1].splitlines()[1:]
    rows = []
    for line in block:
        if not line.strip().startswith('|'):
            break
        rows.append([float(value) for value in line.split()[-3:]])
    return np.array(rows)


def last_stress_block(text: str, title: str) -> np.ndarray:
    """Return the x, y, z rows of the last stress tensor box called ``title``."""
    block = text.rsplit(title, maxsplit=1)[-1].splitlines()
    rows = [line.split()[2:5] for line in block if re.match(r'\s*\|\s+[xyz]\s+-?\d', line)][:3]
    return np.array(rows, dtype=float)


def control_for(atoms, spacing=0.3, basis='light'):
    symbols = list(dict.fromkeys(atoms.get_chemical_symbols()))
    blocks = read_species_defaults(SPECIES_DEFAULTS, symbols, basis)
    return control_text({**PARAMETERS, **labelling_keywords(atoms, spacing)}, blocks), blocks


def test_control_in_of_a_molecule():
    water = molecule('H2O')
    text, blocks = control_for(water)
    assert keyword_lines(text) == [
        ['xc', 'pbe'],
        ['relativistic', 'atomic_zora scalar'],
        ['spin', 'none'],
        ['sc_accuracy_rho', '1e-06'],
        ['override_illconditioning', '.false.'],
        ['output', 'mulliken'],
        ['output', 'hirshfeld'],
        ['compute_forces', '.true.'],
    ]
    assert text.splitlines()[1] == 'xc' + ' ' * 33 + 'pbe', 'values start in column 36'
    # the species blocks follow verbatim, O before H as in the structure; no k-points or stress for a molecule
    assert text.endswith((SPECIES_DEFAULTS / 'light' / '08_O_default').read_text() + blocks['H'])
    assert [line.split()[1] for line in text.splitlines() if line.startswith('  species')] == ['O', 'H']
    assert 'k_grid' not in text
    assert 'stress' not in text


def test_control_in_of_a_periodic_cell_and_a_slab():
    silicon = bulk('Si', 'diamond', a=5.43)
    text, _ = control_for(silicon, spacing=0.3)
    # fcc: |b| = 2π √3 / a = 2.004 Å⁻¹, so 2.004 / 0.3 = 6.7 → 7 points along each reciprocal vector
    assert np.ceil(2 * np.pi * np.sqrt(3) / 5.43 / 0.3) == 7
    assert keyword_lines(text)[-3:] == [
        ['compute_forces', '.true.'],
        ['compute_analytical_stress', '.true.'],
        ['k_grid', '7 7 7'],
    ]
    assert [line.split()[1] for line in text.splitlines() if line.startswith('  species')] == ['Si']

    sheet = graphene(a=2.46, vacuum=7.5)
    slab_keywords = labelling_keywords(sheet, 0.3)
    # hexagonal: |b| = 4π / (√3 a) = 2.949 Å⁻¹ → 10 points in plane, one along the vacuum, no stress of a slab
    assert slab_keywords == {'compute_forces': True, 'k_grid': [10, 10, 1]}


def test_periodic_cell_needs_a_kpoint_spacing():
    with pytest.raises(ValueError, match='positive k-point spacing'):
        labelling_keywords(bulk('Si'), None)
    assert labelling_keywords(molecule('H2O'), None) == {'compute_forces': True}


def test_geometry_in_is_read_back_by_ase():
    silicon = bulk('Si', 'diamond', a=5.43)
    silicon.rattle(0.05, seed=1)
    text = geometry_text(silicon)
    assert len([line for line in text.splitlines() if line.startswith('lattice_vector')]) == 3
    water_text = geometry_text(molecule('H2O'))
    assert 'lattice_vector' not in water_text
    assert [line.split()[-1] for line in water_text.splitlines() if line.startswith('atom')] == ['O', 'H', 'H']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        back = read_aims(io.StringIO(text))
    np.testing.assert_allclose(back.cell.array, silicon.cell.array, atol=1e-12)
    np.testing.assert_allclose(back.positions, silicon.positions, atol=1e-12)


@pytest.mark.parametrize(
    ('parameters', 'message'),
    [
        ({'xc': 'pbe', 'k_grid': [2, 2, 2]}, "\\['k_grid'\\] are set by the calculation"),
        ({'xc': 'pbe', 'species': 'Au'}, "\\['species'\\] are set by the calculation"),
        ({'relativistic': 'none'}, "\\['xc'\\] are required"),
        ({'xc': 'pbe', 'sc iter limit': 40}, 'not a plain FHI-aims keyword'),
        ({'xc': 'pbe\nspecies Au'}, 'multi-line string'),
        ({'xc': 'pbe', 'charge': None}, 'type NoneType'),
        ({'xc': 'pbe', 'charge': float('nan')}, 'non-finite value nan'),
        ({'xc': 'pbe', 'output': []}, 'empty list'),
        ({'xc': 'pbe', 'output': [['band', {'k': 1}]]}, 'type dict'),
    ],
)
def test_bad_parameters_are_named(parameters, message):
    assert re.search(message, check_parameters(parameters))


def test_good_parameters_pass():
    assert check_parameters(PARAMETERS) is None


def test_species_lookup_follows_the_basis_setting(tmp_path):
    light = read_species_defaults(SPECIES_DEFAULTS, ['O', 'H', 'O'], 'light')
    tight = read_species_defaults(SPECIES_DEFAULTS, ['O', 'H'], 'tight')
    assert list(light) == ['O', 'H']
    assert 'outer_grid  302' in light['O']
    assert 'outer_grid  590' in tight['O']
    with pytest.raises(FileNotFoundError, match="no species defaults for \\['Au', 'Si'\\]"):
        read_species_defaults(SPECIES_DEFAULTS, ['Au', 'H', 'Si'], 'tight')
    with pytest.raises(ValueError, match='unknown basis setting'):
        read_species_defaults(SPECIES_DEFAULTS, ['H'], 'really_tight')
    # a file under the name of one element holding another's block is caught
    shutil.copytree(SPECIES_DEFAULTS, tmp_path / 'defaults_2020')
    shutil.copy(SPECIES_DEFAULTS / 'light' / '06_C_default', tmp_path / 'defaults_2020' / 'light' / '08_O_default')
    with pytest.raises(ValueError, match="declares species \\['C'\\]"):
        read_species_defaults(tmp_path / 'defaults_2020', ['O'], 'light')


def test_singlepoint_of_water():
    text = aims_output('singlepoint.out')
    output = parse_aims_output(text)
    assert output.failure is None
    assert output.finished
    assert output.scf_converged
    assert not output.moves_atoms
    assert output.energy == pytest.approx(last_free_energy(text), abs=1e-9)
    np.testing.assert_allclose(output.forces, last_force_block(text), atol=1e-12)
    assert output.forces.shape == (3, 3)
    np.testing.assert_allclose(output.forces.sum(axis=0), 0, atol=1e-8)  # FHI-aims cleaned the net force
    assert output.stress is None, 'a molecule has no stress'
    assert output.atoms.get_chemical_symbols() == ['O', 'H', 'H']


def test_relaxation_of_silicon():
    text = aims_output('relax.out')
    output = parse_aims_output(text)
    assert output.failure is None
    assert output.moves_atoms
    assert output.energy == pytest.approx(last_free_energy(text), abs=1e-9)
    np.testing.assert_allclose(output.forces, last_force_block(text), atol=1e-12)
    stress = last_stress_block(text, 'Analytical stress tensor - Symmetrized')
    np.testing.assert_allclose(output.stress, stress, atol=1e-12)
    np.testing.assert_allclose(output.stress, output.stress.T)
    assert np.ptp(np.diag(output.stress)) < 1e-12, 'cubic silicon: the diagonal of the stress is isotropic'
    final = text.split('Final atomic structure:')[-1].splitlines()
    lattice = np.array([line.split()[1:4] for line in final if line.strip().startswith('lattice_vector')], dtype=float)
    np.testing.assert_allclose(output.atoms.cell.array, lattice, atol=1e-8)


def test_molecular_dynamics_of_water_gives_the_last_step():
    text = aims_output('md.out')
    output = parse_aims_output(text)
    assert output.failure is None
    assert output.moves_atoms
    assert text.count('Complete information for previous time-step:') == 5
    assert output.energy == pytest.approx(last_free_energy(text), abs=1e-9)
    assert output.energy != pytest.approx(float(re.findall(r'Electronic free energy\s+:\s+(\S+) eV', text)[0]))
    np.testing.assert_allclose(output.forces, last_force_block(text), atol=1e-12)


def test_numerical_stress_has_ase_sign():
    text = aims_output('numerical_stress.out')
    output = parse_aims_output(text)
    assert output.failure is None
    assert output.forces is None, 'forces were not requested in that run'
    np.testing.assert_allclose(output.stress, last_stress_block(text, 'Numerical stress tensor'), atol=1e-12)
    # FHI-aims prints the pressure of its tensor: P = -trace/3 is ASE's convention, so the tensor is taken as it is
    pressure = float(re.search(r'Pressure:\s+(\S+)', text).group(1))
    assert -np.trace(output.stress) / 3 == pytest.approx(pressure, abs=1e-8)
    assert len(output.atoms) == 8
    assert output.atoms.pbc.all()


def test_version_iterations_and_wall_time_of_a_complete_output():
    output = parse_aims_output(aims_output('issue_3345_spin_md_light.out'))
    assert output.failure is None
    assert (output.version, output.scf_iterations, output.wall_time) == ('221103', 6, 0.765)


def test_truncated_output_is_incomplete_and_has_no_labels():
    text = aims_output('singlepoint.out')
    output = parse_aims_output(text[: text.index('Self-consistency cycle converged.')])
    assert output.failure is AimsFailure.INCOMPLETE
    assert not output.finished
    assert 'ends before' in output.failure_reason
    assert output.energy is None
    assert output.forces is None


SCF_WARNING = """  ------------------------------------------------------------
  * WARNING! SELF-CONSISTENCY CYCLE DID NOT CONVERGE
  * USING YOUR PRESELECTED ACCURACY CRITERIA.
  * DO NOT RELY ON ANY FINAL DATA WITHOUT FURTHER CHECKS.
  ------------------------------------------------------------
"""


@pytest.mark.parametrize('postprocess_anyway', [False, True])
def test_scf_failure_is_flagged(postprocess_anyway):
    text = aims_output('singlepoint.out')
    converged = 'Self-consistency cycle converged.'
    if postprocess_anyway:  # FHI-aims warns and goes on to forces and the end
        failed = text.replace(converged, SCF_WARNING)
    else:  # FHI-aims stops where the cycle would have converged
        failed = text[: text.index(converged)] + SCF_WARNING + '  *** scf_solver: SCF cycle not converged.\n'
    output = parse_aims_output(failed)
    assert output.failure is AimsFailure.SCF_NOT_CONVERGED
    assert not output.scf_converged
    assert output.finished is postprocess_anyway
    assert 'SELF-CONSISTENCY CYCLE DID NOT CONVERGE' in output.failure_reason
    assert output.energy is None
    assert output.forces is None


def test_mixer_restart_is_not_a_failure():
    text = aims_output('singlepoint.out')
    retry = '  Self-consistency cycle not yet converged - restarting mixer to attempt better convergence.\n'
    retried = text.replace('  Removing unitary transformations', retry + '  Removing unitary transformations', 1)
    assert retry in retried
    output = parse_aims_output(retried)
    assert output.failure is None
    assert output.energy == pytest.approx(last_free_energy(text), abs=1e-9)


@pytest.mark.parametrize('text', ['', aims_output('preamble_fail.out')])
def test_unreadable_output(text):
    output = parse_aims_output(text)
    assert output.failure is AimsFailure.UNREADABLE
    assert output.failure_reason.startswith('ASE cannot read the output')
