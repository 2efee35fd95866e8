"""``AimsParser`` on retrieved folders holding the real FHI-aims outputs that ASE ships (``ase/test/testdata/aims``).

The kernel's reading of these files is checked value by value in ``tests/dft/test_aims.py``; here, that the parser
turns it into the right nodes and exit codes.
"""

import io
import re
from pathlib import Path

import ase
import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_trainspot.calculations.aims import AimsCalculation
from aiida_trainspot.dft.aims import parse_aims_output
from aiida_trainspot.parsers.aims import AimsParser

pytestmark = pytest.mark.aiida

ASE_AIMS_OUTPUTS = Path(ase.__file__).parent / 'test' / 'testdata' / 'aims'


def aims_output(name: str) -> str:
    return (ASE_AIMS_OUTPUTS / name).read_text()


@pytest.fixture
def parse(aiida_localhost):
    """Return a function that parses ``text`` as the ``aims.out`` of a finished ``AimsCalculation``."""

    def parse_text(text: str | None):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:trainspot.aims')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_option('output_filename', 'aims.out')
        node.store()
        retrieved = orm.FolderData()
        if text is not None:
            retrieved.base.repository.put_object_from_filelike(io.BytesIO(text.encode()), 'aims.out')
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        return AimsParser.parse_from_node(node, store_provenance=False)

    return parse_text


def test_singlepoint(parse):
    text = aims_output('singlepoint.out')
    results, process = parse(text)
    assert process.is_finished_ok
    parameters = results['output_parameters'].get_dict()
    final_energy = float(re.findall(r'\| Electronic free energy\s+:\s+(\S+) eV', text)[-1])
    assert parameters['energy'] == pytest.approx(final_energy, abs=1e-9)
    assert parameters == {
        'energy': parameters['energy'],
        'energy_units': 'eV',
        'finished': True,
        'scf_converged': True,
        'number_of_atoms': 3,
    }
    arrays = results['output_arrays']
    assert arrays.get_arraynames() == ['forces']
    np.testing.assert_array_equal(arrays.get_array('forces'), parse_aims_output(text).forces)
    assert 'output_structure' not in results, 'a single point does not move the atoms'


def test_relaxation_gives_the_final_structure_forces_and_stress(parse):
    text = aims_output('relax.out')
    results, process = parse(text)
    assert process.is_finished_ok
    expected = parse_aims_output(text)
    arrays = results['output_arrays']
    assert sorted(arrays.get_arraynames()) == ['forces', 'stress']
    assert arrays.get_array('stress').shape == (3, 3)
    np.testing.assert_array_equal(arrays.get_array('stress'), expected.stress)
    structure = results['output_structure']
    np.testing.assert_allclose(structure.cell, expected.atoms.cell.array)
    assert structure.get_formula() == 'Si2'
    assert structure.pbc == (True, True, True)


def test_numerical_stress_without_forces(parse):
    results, process = parse(aims_output('numerical_stress.out'))
    assert process.is_finished_ok
    assert results['output_arrays'].get_arraynames() == ['stress']
    assert results['output_parameters']['number_of_atoms'] == 8


def test_molecular_dynamics_gives_the_last_structure(parse):
    text = aims_output('md.out')
    results, process = parse(text)
    assert process.is_finished_ok
    np.testing.assert_allclose(results['output_structure'].get_ase().positions, parse_aims_output(text).atoms.positions)


def test_version_iterations_and_wall_time(parse):
    results, process = parse(aims_output('issue_3345_spin_md_light.out'))
    assert process.is_finished_ok
    parameters = results['output_parameters']
    assert (parameters['fhi_aims_version'], parameters['scf_iterations'], parameters['wall_time_seconds']) == (
        '221103',
        6,
        0.765,
    )


def test_scf_failure_keeps_the_parameters_and_no_labels(parse):
    text = aims_output('singlepoint.out')
    converged = 'Self-consistency cycle converged.'
    failed = text[: text.index(converged)] + '  *** scf_solver: SCF cycle not converged.\n'
    results, process = parse(failed)
    assert process.exit_status == AimsCalculation.exit_codes.ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED.status == 410
    assert 'scf_solver: SCF cycle not converged.' in process.exit_message
    assert results['output_parameters']['scf_converged'] is False
    assert 'output_arrays' not in results


@pytest.mark.parametrize(
    ('text', 'status'),
    [
        (aims_output('singlepoint.out').replace('Have a nice day.', ''), 312),  # stopped, e.g. by the walltime
        (aims_output('preamble_fail.out'), 310),
        ('', 310),
        (None, 300),
    ],
)
def test_failed_outputs_give_their_exit_code(parse, text, status):
    results, process = parse(text)
    assert process.exit_status == status
    assert 'output_arrays' not in results
    assert ('output_parameters' in results) is (status == 312)
