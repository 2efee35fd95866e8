"""``MdCalculation`` run for real: the ``trainspot-md`` console script as a localhost code, with a tiny MACE model."""

import json

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from ase import Atoms
from ase.build import bulk

from aiida_trainspot.calculations.md import MdCalculation
from aiida_trainspot.data import PESData, PotentialData
from tests.training.conftest import real_mace_run

pytestmark = [pytest.mark.aiida, pytest.mark.real]

NVT = {'temperature': 300, 'timestep': 2.0, 'steps': 20, 'thermalisation': 5, 'stride': 5}


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    """Return a tiny MACE model file trained on EMT copper (once per session, shared with the training tests)."""
    return real_mace_run(tmp_path_factory.getbasetemp()) / 'mace.model'


def potential(path, species=('Cu',)) -> PotentialData:
    """Return a stored ``PotentialData`` of the MACE model ``path``."""
    return PotentialData(path, architecture='mace', species=species, cutoff=4.0, seed=0).store()


def cluster_and_bulk() -> PESData:
    """Return a stored dataset of a Cu3 cluster (non-periodic) and a copper cell."""
    trimer = Atoms('Cu3', positions=[[0, 0, 0], [2.5, 0, 0], [1.25, 2.1, 0]], cell=[10, 10, 10])
    return PESData.from_ase([trimer, bulk('Cu', 'fcc', a=3.61, cubic=True)]).store()


def test_prepare_for_submission(md_code, model_path, tmp_path):
    models = {'member_0': potential(model_path), 'member_1': potential(model_path)}
    inputs = {'code': md_code, 'structures': cluster_and_bulk(), 'models': models, 'parameters': orm.Dict(NVT)}
    process = instantiate_process(get_manager().get_runner(), MdCalculation, **{**inputs, 'drive': orm.Str('member_1')})
    calcinfo = process.prepare_for_submission(Folder(str(tmp_path)))
    assert sorted(path.name for path in tmp_path.iterdir()) == ['md.json', 'models.json']
    assert json.loads((tmp_path / 'md.json').read_text())['drive'] == 1
    specs = json.loads((tmp_path / 'models.json').read_text())
    assert [spec['path'] for spec in specs] == ['models/member_0/mace.model', 'models/member_1/mace.model']
    assert {(spec['architecture'], spec['extensions'], spec['dtype']) for spec in specs} == {('mace', None, 'float64')}
    assert calcinfo.local_copy_list[1:] == [
        (models[f'member_{index}'].uuid, 'model/mace.model', f'models/member_{index}/mace.model') for index in (0, 1)
    ]
    assert calcinfo.retrieve_temporary_list == ['frames.h5']


def test_committee_md_for_real(md_code, model_path):
    models = {'member_0': potential(model_path), 'member_1': potential(model_path)}
    structures = cluster_and_bulk()
    results, node = run_get_node(
        MdCalculation, code=md_code, structures=structures, models=models, parameters=orm.Dict(NVT)
    )
    assert node.exit_status == 0, node.exit_message
    assert results['output_parameters']['stop_reason'] == 'completed'
    assert (results['output_parameters']['num_runs'], len(results['frames'])) == (2, 6)
    frames = list(results['frames'].iter_frames())
    assert [frame.info['run'] for frame in frames] == [0, 0, 0, 1, 1, 1]
    assert 'committee_stress' in frames[-1].frame_arrays and 'committee_stress' not in frames[0].frame_arrays
    trace = results['trace']
    assert trace.get_array('step').tolist() == [5, 10, 15, 20] * 2
    assert np.all(trace.get_array('uncertainty') == 0)


def test_guard_stop_is_exit_410_with_frames(md_code, model_path):
    parameters = orm.Dict({**NVT, 'min_distance': 2.46})  # the trimer starts with two atoms 2.44 Å apart
    results, node = run_get_node(
        MdCalculation,
        code=md_code,
        structures=cluster_and_bulk(),
        models={'member_0': potential(model_path)},
        parameters=parameters,
    )
    assert node.exit_status == 410
    assert results['output_parameters']['stop_reason'].startswith('unstable: interatomic distance')
    assert len(results['frames']) == 0 and results['output_parameters']['num_runs'] == 1


@pytest.mark.parametrize(
    ('parameters', 'models', 'drive', 'message'),
    [
        ({**NVT, 'ensemble': 'nve'}, 1, 'mean', '`ensemble`'),
        ({**NVT, 'temperature': -1}, 1, 'mean', '`temperature`'),
        ({**NVT, 'timestep': -1}, 1, 'mean', '`timestep`'),
        ({**NVT, 'thermalisation': 20}, 1, 'mean', '`thermalisation`'),
        ({**NVT, 'ensemble': 'npt', 'pressure': 1.0}, 1, 'mean', 'structure 0 is not periodic'),
        (NVT, 1, 'member_3', '`drive`'),
        ({**NVT, 'uncertainty_stop': {'threshold': 0.1, 'every': 2}}, 1, 'mean', '`uncertainty_stop`'),
        (NVT, 0, 'mean', '`models`'),
        (NVT, 'mixed', 'mean', 'different species'),
    ],
)
def test_bad_inputs_are_rejected_naming_the_field(md_code, model_path, parameters, models, drive, message):
    if models == 'mixed':
        models = {'member_0': potential(model_path), 'member_1': potential(model_path, ('Cu', 'Au'))}
    else:
        models = {f'member_{index}': potential(model_path) for index in range(models)}
    inputs = {'code': md_code, 'structures': cluster_and_bulk(), 'parameters': orm.Dict(parameters)}
    with pytest.raises(ValueError, match=message):
        run_get_node(MdCalculation, **inputs, models=models, drive=orm.Str(drive))
