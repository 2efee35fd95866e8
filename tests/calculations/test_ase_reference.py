"""``AseReferenceCalculation`` run for real: the ``trainspot-ase-label`` console script as a localhost code."""

import json

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from ase.build import bulk
from ase.calculators.emt import EMT

from aiida_trainspot.calculations.ase_reference import AseReferenceCalculation
from aiida_trainspot.data import PESData

pytestmark = [pytest.mark.aiida, pytest.mark.real]

TERSOFF = {
    'name': 'lammps',
    'parameters': {
        'pair_style': 'tersoff',
        'pair_coeff': ['* * SiC.tersoff C'],
        'potential_files': ['/usr/share/lammps/potentials/SiC.tersoff'],
    },
}


@pytest.fixture
def copper_dataset():
    """Return a stored dataset of two copper cells and a silicon cell, which EMT cannot compute."""
    rattled = bulk('Cu', 'fcc', a=3.61, cubic=True)
    rattled.rattle(0.05, seed=7)
    return PESData.from_ase([bulk('Cu', 'fcc', a=3.61), rattled, bulk('Si', 'diamond', a=5.43)]).store()


def test_prepare_for_submission(ase_label_code, copper_dataset, tmp_path):
    inputs = {'code': ase_label_code, 'dataset': copper_dataset, 'calculator': orm.Dict(TERSOFF)}
    process = instantiate_process(get_manager().get_runner(), AseReferenceCalculation, **inputs)
    calcinfo = process.prepare_for_submission(Folder(str(tmp_path)))
    assert sorted(path.name for path in tmp_path.iterdir()) == ['calculator.json']
    written = json.loads((tmp_path / 'calculator.json').read_text())
    assert written == {'name': 'lammps', 'parameters': {**TERSOFF['parameters'], 'specorder': ['C']}}
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.cmdline_params == [
        *('--input', 'dataset.h5', '--calculator', 'calculator.json'),
        *('--output', 'labelled.h5', '--results', 'results.json'),
    ]
    assert calcinfo.local_copy_list == [(copper_dataset.uuid, PESData.FILENAME, 'dataset.h5')]
    assert calcinfo.retrieve_temporary_list == ['labelled.h5']
    assert 'labelled.h5' not in calcinfo.retrieve_list
    assert process.node.get_option('withmpi') is False
    assert process.node.get_option('resources') == {'num_machines': 1, 'num_mpiprocs_per_machine': 1}


def test_emt_labels_every_frame_or_says_why(ase_label_code, copper_dataset):
    results, node = run_get_node(
        AseReferenceCalculation, code=ase_label_code, dataset=copper_dataset, calculator=orm.Dict({'name': 'emt'})
    )
    assert node.exit_status == 0, node.exit_message
    labelled = results['labelled_dataset']
    assert len(labelled) == 3
    assert labelled.base.attributes.get('num_labelled') == 2
    frames = list(labelled.iter_frames())
    for atoms, frame in zip(copper_dataset.to_ase()[:2], frames[:2], strict=True):
        atoms.calc = EMT()
        assert frame.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
        np.testing.assert_allclose(frame.forces, atoms.get_forces(), atol=1e-12)
        np.testing.assert_allclose(frame.stress, atoms.get_stress(voigt=False), atol=1e-14)
    assert frames[2].failure_reason == 'NotImplementedError: No EMT-potential for Si'
    parameters = results['output_parameters'].get_dict()
    assert parameters['calculator'] == 'emt'
    assert (parameters['num_frames'], parameters['num_labelled'], parameters['num_failed']) == (3, 2, 1)
    assert parameters['failures'] == [{'frame': 2, 'reason': frames[2].failure_reason}]
    assert 'labelled.h5' not in node.outputs.retrieved.list_object_names(), 'the dataset is stored once, as output'


def test_lammps_tersoff_diamond(ase_label_code):
    dataset = PESData.from_ase([bulk('C', 'diamond', a=3.566)]).store()
    results, node = run_get_node(
        AseReferenceCalculation, code=ase_label_code, dataset=dataset, calculator=orm.Dict(TERSOFF)
    )
    assert node.exit_status == 0, node.exit_message
    (frame,) = results['labelled_dataset'].iter_frames()
    assert frame.energy / frame.natoms == pytest.approx(-7.37, abs=0.05), "Tersoff's cohesive energy of diamond"


def test_all_frames_failed(ase_label_code):
    dataset = PESData.from_ase([bulk('Si', 'diamond', a=5.43), bulk('Ge', 'diamond', a=5.66)]).store()
    results, node = run_get_node(
        AseReferenceCalculation, code=ase_label_code, dataset=dataset, calculator=orm.Dict({'name': 'emt'})
    )
    assert node.exit_status == AseReferenceCalculation.exit_codes.ERROR_ALL_FRAMES_FAILED.status == 410
    assert 'No EMT-potential for Si' in node.exit_message
    reasons = [frame.failure_reason for frame in results['labelled_dataset'].iter_frames()]
    assert reasons == ['NotImplementedError: No EMT-potential for Si', 'NotImplementedError: No EMT-potential for Ge']
    assert results['output_parameters']['num_failed'] == 2


def test_runner_refusing_the_calculator_is_reported(ase_label_code, copper_dataset):
    """A potential file missing on the computer passes submission; the runner's own message becomes the exit's."""
    spec = {**TERSOFF, 'parameters': {**TERSOFF['parameters'], 'potential_files': ['/no/such/C.tersoff']}}
    results, node = run_get_node(
        AseReferenceCalculation, code=ase_label_code, dataset=copper_dataset, calculator=orm.Dict(spec)
    )
    assert node.exit_status == AseReferenceCalculation.exit_codes.ERROR_OUTPUT_MISSING.status == 300
    assert "`parameters.potential_files` ['/no/such/C.tersoff'] do not exist on this computer" in node.exit_message
    assert 'labelled_dataset' not in results


@pytest.mark.parametrize(
    ('calculator', 'message'),
    [
        ({'name': 'dft'}, r"`calculator`: unknown calculator `name` 'dft'"),
        (
            {'name': 'lennard_jones', 'parameters': {'sigma': -1}},
            r'`calculator`: `parameters.sigma` must be a positive number, got -1',
        ),
        ({'name': 'emt', 'parameters': {'cutoff': 6.0}}, r"`calculator`: unknown parameters \['cutoff'\]"),
        (
            {'name': 'lammps', 'parameters': {'pair_style': 'tersoff', 'pair_coeff': ['* * C.tersoff C\nshell ls']}},
            r'`calculator`: `parameters.pair_coeff\[0\]` must be LAMMPS arguments',
        ),
    ],
)
def test_bad_calculator_is_refused_at_submission(ase_label_code, copper_dataset, calculator, message):
    with pytest.raises(ValueError, match=message):
        run_get_node(
            AseReferenceCalculation, code=ase_label_code, dataset=copper_dataset, calculator=orm.Dict(calculator)
        )


def test_empty_dataset_and_wrong_code_are_refused(ase_label_code, aiida_code_installed, copper_dataset):
    with pytest.raises(ValueError, match='`dataset` has no frames'):
        run_get_node(
            AseReferenceCalculation,
            code=ase_label_code,
            dataset=PESData.from_frames([]).store(),
            calculator=orm.Dict({'name': 'emt'}),
        )
    pw_code = aiida_code_installed(default_calc_job_plugin='quantumespresso.pw', filepath_executable='/bin/true')
    with pytest.raises(ValueError, match=r'runs `quantumespresso\.pw`, expected `trainspot\.ase_reference`'):
        run_get_node(
            AseReferenceCalculation, code=pw_code, dataset=copper_dataset, calculator=orm.Dict({'name': 'emt'})
        )
