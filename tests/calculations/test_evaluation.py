"""``EvaluationCalculation`` run for real: ``trainspot-evaluate`` as a localhost code on two tiny MACE models.

The models are trained once per session on EMT copper (not DFT) by :func:`committee_model_files`.
"""

import json

import numpy as np
import pytest
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from ase.build import bulk

from aiida_trainspot.calculations.evaluate import EvaluationCalculation
from aiida_trainspot.data import PESData, PotentialData
from aiida_trainspot.uncertainty.metrics import committee_metrics
from tests.runners.test_evaluate import committee_model_files, direct_predictions

pytestmark = [pytest.mark.aiida, pytest.mark.real]


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    """Return the two tiny MACE model files (seeds 0 and 1)."""
    return committee_model_files(tmp_path_factory.getbasetemp())


def potential(path, species=('Cu',), seed=0):
    """Return a stored ``PotentialData`` of the MACE model file ``path``."""
    return PotentialData(path, architecture='mace', species=species, cutoff=4.0, seed=seed).store()


@pytest.fixture
def committee(model_files):
    """Return the namespace of the two trained members as stored ``PotentialData``."""
    return {f'member_{k}': potential(path, seed=k) for k, path in enumerate(model_files)}


@pytest.fixture
def copper_dataset():
    """Return a stored dataset of a primitive copper cell and a rattled 4-atom cell (unlabelled)."""
    rattled = bulk('Cu', 'fcc', a=3.58, cubic=True)
    rattled.rattle(0.05, seed=2)
    return PESData.from_ase([bulk('Cu', 'fcc', a=3.61), rattled]).store()


def test_prepare_for_submission(evaluate_code, copper_dataset, committee, tmp_path):
    inputs = {'code': evaluate_code, 'dataset': copper_dataset, 'models': committee}
    process = instantiate_process(get_manager().get_runner(), EvaluationCalculation, **inputs)
    calcinfo = process.prepare_for_submission(Folder(str(tmp_path)))
    assert sorted(path.name for path in tmp_path.iterdir()) == ['models.json']
    assert json.loads((tmp_path / 'models.json').read_text()) == [
        {'architecture': 'mace', 'path': f'models/member_{k}/mace.model', 'extensions': None, 'dtype': 'float64'}
        for k in range(2)
    ]
    assert calcinfo.local_copy_list == [
        (copper_dataset.uuid, PESData.FILENAME, 'dataset.h5'),
        *[(committee[f'member_{k}'].uuid, 'model/mace.model', f'models/member_{k}/mace.model') for k in range(2)],
    ]
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.cmdline_params == [
        *('--input', 'dataset.h5', '--models', 'models.json'),
        *('--output', 'evaluated.h5', '--results', 'results.json'),
    ]
    assert calcinfo.retrieve_temporary_list == ['evaluated.h5']


def test_members_are_ordered_by_index(evaluate_code, copper_dataset, model_files, tmp_path):
    """``member_10`` comes after ``member_2``: the order is numeric, not alphabetical."""
    models = {f'member_{k}': potential(model_files[k % 2], seed=k) for k in (10, 2)}
    process = instantiate_process(
        get_manager().get_runner(), EvaluationCalculation, code=evaluate_code, dataset=copper_dataset, models=models
    )
    calcinfo = process.prepare_for_submission(Folder(str(tmp_path)))
    assert [copy[2] for copy in calcinfo.local_copy_list[1:]] == [
        'models/member_2/mace.model',
        'models/member_10/mace.model',
    ]


def test_committee_predictions_are_stored_with_the_frames(evaluate_code, copper_dataset, committee, model_files):
    results, node = run_get_node(EvaluationCalculation, code=evaluate_code, dataset=copper_dataset, models=committee)
    assert node.exit_status == 0, node.exit_message
    evaluated = results['evaluated_dataset']
    batch = next(evaluated.iter_batches())
    energies, forces, stresses = direct_predictions(model_files, copper_dataset.to_ase())
    np.testing.assert_allclose(batch.frame_arrays['committee_energy'], energies.T, rtol=1e-9)
    np.testing.assert_allclose(batch.atom_arrays['committee_forces'], forces.transpose(1, 0, 2), atol=1e-9)
    expected = committee_metrics(energies, forces, batch.natoms, stresses).as_columns()
    np.testing.assert_allclose(batch.frame_arrays['force_disagreement'], expected['force_disagreement'], rtol=1e-9)
    parameters = results['output_parameters'].get_dict()
    assert (parameters['num_frames'], parameters['num_atoms'], parameters['num_members']) == (2, 5, 2)
    assert parameters['mean_stress_std'] == pytest.approx(expected['stress_std'].mean())
    assert 'evaluated.h5' not in node.outputs.retrieved.list_object_names(), 'the dataset is stored once, as output'


def test_unloadable_member_exit_code(evaluate_code, copper_dataset, model_files, tmp_path):
    broken = tmp_path / 'broken.model'
    broken.write_bytes(b'this is not a model')
    models = {'member_0': potential(broken), 'member_1': potential(model_files[0])}
    _, node = run_get_node(EvaluationCalculation, code=evaluate_code, dataset=copper_dataset, models=models)
    assert node.exit_status == EvaluationCalculation.exit_codes.ERROR_MODEL_LOAD_FAILED.status
    assert '`member_0`' in node.exit_message
    assert 'broken.model' in node.exit_message


@pytest.mark.parametrize(
    ('members', 'message'),
    [
        ({'member_0': ('Cu',)}, 'at least 2 members'),
        ({'member_0': ('Cu',), 'member_1': ('Au', 'Cu')}, r"same species: member_0 \['Cu'\], member_1 \['Au', 'Cu'\]"),
        ({'member_0': ('Cu',), 'first': ('Cu',)}, r"named `member_<k>`.*\['first'\]"),
    ],
)
def test_bad_committees_are_rejected_at_submission(evaluate_code, copper_dataset, model_files, members, message):
    models = {name: potential(model_files[0], species) for name, species in members.items()}
    with pytest.raises(ValueError, match=message):
        run_get_node(EvaluationCalculation, code=evaluate_code, dataset=copper_dataset, models=models)


def test_unknown_species_are_rejected_at_submission(evaluate_code, committee):
    gold = PESData.from_ase([bulk('Au', 'fcc', a=4.08)]).store()
    with pytest.raises(ValueError, match=r"`dataset` has species \['Au'\] that the models"):
        run_get_node(EvaluationCalculation, code=evaluate_code, dataset=gold, models=committee)
