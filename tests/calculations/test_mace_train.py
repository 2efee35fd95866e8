"""``MaceTrainCalculation`` run for real: tiny MACE models trained by ``mace_run_train`` on EMT labels (not DFT).

The trainings share one first model (module scope): continual learning, resuming from checkpoints and fine-tuning
all start from it. The code therefore lives on a computer of this module instead of the function-scoped
``aiida_code_installed``.
"""

import dataclasses
import shutil
import uuid

import ase.io
import numpy as np
import pytest
import yaml
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_trainspot.calculations.mace_train import MaceTrainCalculation
from aiida_trainspot.data import PESData, PotentialData
from aiida_trainspot.dataset import frame_to_atoms
from aiida_trainspot.environment.codes import ensure_localhost
from aiida_trainspot.training.mace_outputs import parse_results
from tests.training.conftest import TINY_MACE, copper_frames, isolated_atom

pytestmark = [pytest.mark.aiida, pytest.mark.real]


@pytest.fixture(scope='module')
def mace_code(aiida_profile, tmp_path_factory):
    """Return the `mace_run_train` of the environment as a code on a localhost computer, one thread."""
    computer, _ = ensure_localhost(f'mace-{uuid.uuid4().hex[:8]}', tmp_path_factory.mktemp('mace_scratch'))
    executable = shutil.which('mace_run_train')
    assert executable is not None, 'install the `mace` extra: `mace_run_train` is missing'
    code = orm.InstalledCode(
        computer=computer,
        filepath_executable=executable,
        label='mace_run_train',
        default_calc_job_plugin='trainspot.mace_train',
        prepend_text='export OMP_NUM_THREADS=1',
    )
    return code.store()


@pytest.fixture(scope='module')
def alloy_dataset(aiida_profile):
    """Return 32 copper cells, every other one with a gold atom (26 train, 3 valid, 3 test), EMT labels."""
    return PESData.from_frames(copper_frames(seed=1, gold=True)).store()


@pytest.fixture(scope='module')
def copper_dataset(aiida_profile):
    """Return 32 pure copper cells, more strained than those of the first model, EMT labels."""
    return PESData.from_frames(copper_frames(seed=2, strain=0.05)).store()


@pytest.fixture(scope='module')
def first_run(mace_code, alloy_dataset):
    """Return the outputs and node of a training from scratch of the tiny model, 8 epochs."""
    results, node = run_get_node(
        MaceTrainCalculation, code=mace_code, dataset=alloy_dataset, hyperparameters=orm.Dict(TINY_MACE)
    )
    assert node.exit_status == 0, node.exit_message
    return results, node


def train(code, dataset, **inputs):
    """Run a training and return its outputs and node, after checking that it succeeded."""
    results, node = run_get_node(MaceTrainCalculation, code=code, dataset=dataset, **inputs)
    assert node.exit_status == 0, f'{node.exit_message}\n{node.outputs.retrieved.get_object_content("mace.err")}'
    return results, node


def test_training_lowers_the_validation_error(first_run, alloy_dataset):
    results, node = first_run
    metrics, errors = results['metrics'], results['errors'].get_dict()
    np.testing.assert_array_equal(metrics.get_array('epoch'), np.arange(9))
    assert errors['valid']['forces_rmse'] < metrics.get_array('valid_forces_rmse')[1], 'below the first epoch'
    assert set(errors) >= {'train', 'valid', 'test', 'best_epoch', 'units'}
    assert {'energy_rmse', 'forces_rmse', 'stress_rmse', 'forces_mae'} <= set(errors['valid'])
    model = results['model']
    assert (model.architecture, model.species, model.cutoff, model.filename) == (
        'mace',
        ['Cu', 'Au'],
        4.0,
        'mace.model',
    )
    attributes = model.base.attributes.all
    assert (attributes['seed'], attributes['dtype'], attributes['parent_model_uuid']) == (0, 'float64', None)
    assert attributes['training_set_uuid'] == alloy_dataset.uuid
    assert set(attributes['atomic_energies']) == {'Cu', 'Au'}
    assert 'mace.model' not in node.outputs.retrieved.list_object_names(), 'the model is stored once, as output'
    config = yaml.safe_load(node.base.repository.get_object_content('config.yaml'))
    assert (config['E0s'], config['seed'], config['num_channels'], config['loss']) == ('average', 0, 8, 'stress')
    script = node.base.repository.get_object_content('_aiidasubmit.sh')
    threads = [line for line in script.splitlines() if 'OMP_NUM_THREADS' in line]
    assert threads == ['export OMP_NUM_THREADS=1'] * 2, "the code's prepend text, then the job's resources"


def test_model_predicts_the_reported_validation_errors(first_run, alloy_dataset):
    """MACE's calculator loads the model; its errors on the validation frames are those the job reported."""
    from mace.calculators import MACECalculator

    results, _ = first_run
    with results['model'].model_path() as path:
        calculator = MACECalculator(model_paths=str(path), device='cpu', default_dtype='float64')
    energy_errors, force_errors = [], []
    for frame in alloy_dataset.iter_frames(query={'split': 'valid'}):
        atoms = frame_to_atoms(frame)
        atoms.calc = calculator
        energy_errors.append((atoms.get_potential_energy() - frame.energy) / frame.natoms)
        force_errors.append(atoms.get_forces() - frame.forces)
    valid = results['errors']['valid']
    assert 1000 * np.sqrt(np.mean(np.square(energy_errors))) == pytest.approx(valid['energy_rmse'], abs=0.051)
    assert 1000 * np.sqrt(np.mean(np.square(np.concatenate(force_errors)))) == pytest.approx(
        valid['forces_rmse'], abs=0.051
    )


def test_continual_learning_starts_where_the_first_run_ended(first_run, mace_code, alloy_dataset):
    first, _ = first_run
    results, node = train(
        mace_code,
        alloy_dataset,
        restart_from=first['model'],
        hyperparameters=orm.Dict({'max_num_epochs': 2}),
        seed=orm.Int(1),
    )
    first_losses, losses = first['metrics'].get_array('valid_loss'), results['metrics'].get_array('valid_loss')
    best = first['errors']['best_epoch']
    assert losses[0] == pytest.approx(first_losses[best], rel=1e-6), 'the same weights and E0s as the first model'
    assert losses[0] < first_losses[1] / 5, 'far below the first epoch of a fresh start'
    model = results['model']
    assert model.base.attributes.get('parent_model_uuid') == first['model'].uuid
    assert model.cutoff == 4.0, 'the architecture of the starting model, not the default r_max of 6 Å'
    assert model.base.attributes.get('atomic_energies') == first['model'].base.attributes.get('atomic_energies')
    config = yaml.safe_load(node.base.repository.get_object_content('config.yaml'))
    assert (config['foundation_model'], config['multiheads_finetuning']) == ('start.model', False)
    assert 'num_channels' not in config


def test_resume_from_the_checkpoints_of_a_stopped_run(first_run, mace_code, alloy_dataset):
    """A run given the remote folder of the first one picks up its checkpoint and its per-epoch history."""
    first, first_node = first_run
    best = first['errors']['best_epoch'] - 1
    with pytest.raises(ValueError, match=r'`seed` 5 differs from the seed 0 of the run of `parent_folder`'):
        run_get_node(
            MaceTrainCalculation,
            code=mace_code,
            dataset=alloy_dataset,
            parent_folder=first_node.outputs.remote_folder,
            seed=orm.Int(5),
        )
    results, node = train(
        mace_code,
        alloy_dataset,
        parent_folder=first_node.outputs.remote_folder,
        hyperparameters=orm.Dict({**TINY_MACE, 'max_num_epochs': 10}),
    )
    log = node.outputs.retrieved.get_object_content('mace.out')
    loading = log.index(f'Loading checkpoint: checkpoints/mace_run-0_epoch-{best}.pt')
    assert loading < log.index('Started training')
    metrics = results['metrics']
    np.testing.assert_array_equal(metrics.get_array('epoch'), np.arange(11))
    first_losses = first['metrics'].get_array('valid_loss')
    np.testing.assert_array_equal(metrics.get_array('valid_loss')[: best + 1], first_losses[: best + 1])
    records = parse_results(node.outputs.retrieved.get_object_content('results/mace_run-0_train.txt'))
    initial = [record['loss'] for record in records if record['mode'] == 'eval' and record['epoch'] is None]
    assert len(initial) == 2, 'the history of the first run, then that of the resumed one'
    assert initial[1] == pytest.approx(first_losses[best + 1], rel=1e-9), 'resumed from the saved weights'


def test_replay_fine_tuning_on_fewer_elements(first_run, mace_code, copper_dataset, alloy_dataset):
    """Fine-tune the first model, used as a local foundation model file, on copper only, replaying its alloy frames."""
    first, _ = first_run
    results, node = train(
        mace_code,
        copper_dataset,
        foundation_model=first['model'],
        replay_dataset=alloy_dataset,
        hyperparameters=orm.Dict({'max_num_epochs': 2, 'lr': 0.001}),
    )
    config = yaml.safe_load(node.base.repository.get_object_content('config.yaml'))
    assert (config['multiheads_finetuning'], config['pt_train_file'], config['lr']) == (True, 'replay.xyz', 0.001)
    assert "Using heads: ['Default', 'pt_head']" in node.outputs.retrieved.get_object_content('mace.out')
    model = results['model']
    assert model.species == ['Cu', 'Au'], 'the replay head keeps gold in the model'
    assert (model.cutoff, model.base.attributes.get('parent_model_uuid')) == (4.0, first['model'].uuid)
    first_energies = first['model'].base.attributes.get('atomic_energies')
    assert model.base.attributes.get('atomic_energies') == {'Cu': first_energies['Cu']}, 'E0s of the foundation'
    np.testing.assert_array_equal(results['metrics'].get_array('epoch'), np.arange(3))
    assert results['errors']['valid']['forces_rmse'] > 0


@pytest.fixture
def prepare(mace_code, tmp_path):
    """Return a function that runs `prepare_for_submission` on ``inputs`` and returns the calcinfo and folder."""

    def prepare_inputs(**inputs):
        process = instantiate_process(get_manager().get_runner(), MaceTrainCalculation, code=mace_code, **inputs)
        return process.prepare_for_submission(Folder(str(tmp_path))), tmp_path

    return prepare_inputs


def fake_model(tmp_path, species=('Cu',), architecture='mace', **attributes) -> PotentialData:
    """Return a stored model node whose file is not a model: for checks that only read the attributes."""
    (tmp_path / 'fake.model').write_text('not a model')
    node = PotentialData(tmp_path / 'fake.model', architecture=architecture, species=species, cutoff=5.0)
    node.base.attributes.set_many(attributes)
    return node.store()


def test_e0s_from_isolated_atoms_of_every_element(prepare):
    dataset = PESData.from_frames([*copper_frames(), isolated_atom('Cu', -0.125)]).store()
    _, folder = prepare(dataset=dataset, hyperparameters=orm.Dict({'batch_size': 2}))
    config = yaml.safe_load((folder / 'config.yaml').read_text())
    assert (config['E0s'], config['batch_size']) == ('{29: -0.125}', 2)
    train = ase.io.read(folder / 'train.xyz', index=':')
    assert len(train) == 27
    assert [atoms.info.get('config_type') for atoms in train].count('IsolatedAtom') == 1
    assert (len(ase.io.read(folder / 'valid.xyz', index=':')), len(ase.io.read(folder / 'test.xyz', index=':'))) == (
        3,
        3,
    )
    assert 'REF_stress' in train[0].info and 'REF_forces' in train[0].arrays


def test_isolated_atoms_of_some_elements_are_left_out(prepare):
    dataset = PESData.from_frames([*copper_frames(gold=True), isolated_atom('Cu', -0.125)]).store()
    _, folder = prepare(dataset=dataset)
    assert yaml.safe_load((folder / 'config.yaml').read_text())['E0s'] == 'average'
    assert len(ase.io.read(folder / 'train.xyz', index=':')) == 26, 'no E0 of gold: all E0s are fitted'


def test_threads_match_the_cores_of_the_job(prepare):
    resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 2, 'num_cores_per_mpiproc': 3}
    dataset = PESData.from_frames(copper_frames()).store()
    calcinfo, _ = prepare(dataset=dataset, metadata={'options': {'resources': resources}})
    assert calcinfo.prepend_text == 'export OMP_NUM_THREADS=6'
    (codeinfo,) = calcinfo.codes_info
    assert (codeinfo.cmdline_params, codeinfo.stdout_name, codeinfo.stderr_name) == (
        ['--config', 'config.yaml'],
        'mace.out',
        'mace.err',
    )
    assert calcinfo.retrieve_list == ['mace.out', 'mace.err', 'results']
    assert calcinfo.retrieve_temporary_list == ['mace_stagetwo.model', 'mace.model']


def test_starting_model_and_checkpoints_are_copied(prepare, mace_code, tmp_path):
    model = fake_model(tmp_path, atomic_energies={'Cu': -0.5})
    parent = orm.RemoteData(computer=mace_code.computer, remote_path='/scratch/previous').store()
    dataset = PESData.from_frames(copper_frames()).store()
    calcinfo, folder = prepare(dataset=dataset, restart_from=model, parent_folder=parent)
    assert calcinfo.local_copy_list == [(model.uuid, 'model/fake.model', 'start.model')]
    assert calcinfo.remote_copy_list == [
        (mace_code.computer.uuid, '/scratch/previous/checkpoints', 'checkpoints'),
        (mace_code.computer.uuid, '/scratch/previous/results', 'results'),
    ]
    config = yaml.safe_load((folder / 'config.yaml').read_text())
    assert (config['restart_latest'], config['E0s'], config['foundation_model']) == (True, '{29: -0.5}', 'start.model')


def without(frames, split, **labels):
    """Return ``frames``, those tagged ``split`` without ``labels`` (e.g. ``forces=None``)."""
    return [dataclasses.replace(frame, **labels) if frame.split == split else frame for frame in frames]


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'hyperparameters': {'num_chanels': 8}}, r'`hyperparameters`: unknown hyperparameter `num_chanels`'),
        ({'frames': 'unlabelled_valid'}, r'`dataset`: no labelled frame has the split tag `valid`'),
        ({'frames': 'unlabelled_train'}, r'`dataset`: no labelled frame has the split tag `train`'),
        ({'frames': 'energy_only'}, r'`dataset`: 3 `test` frames have an energy but no forces'),
        ({'hyperparameters': {'batch_size': 30}}, r'fewer than `hyperparameters.batch_size` 30'),
        ({'seed': -1}, r'`seed` must be an integer in \[0, 2\*\*32\), got -1'),
        ({'withmpi': True}, r'`metadata.options.withmpi` must be False'),
        ({'restart_from': {'architecture': 'pet'}}, r'`restart_from` is a `pet` model; MACE can only start'),
        ({'foundation_model': {'species': ('Au',)}}, r"`dataset` has elements \['Cu'\] that the `foundation_model`"),
        ({'restart_from': {}, 'hyperparameters': {'r_max': 5.0}}, r"`hyperparameters` \['r_max'\] cannot be set"),
        ({'restart_from': {}, 'foundation_model': {}}, r'`restart_from` and `foundation_model` exclude each other'),
        ({'replay': True}, r'`replay_dataset` is only used to fine-tune a `foundation_model`'),
        ({'replay': True, 'foundation_model': {}}, r'cannot fine-tune a single-element foundation model with replay'),
        (
            {'replay': 'gold', 'foundation_model': {'species': ('Cu', 'Ag')}},
            r"`replay_dataset` has elements \['Au'\] that the `foundation_model` does not know",
        ),
        ({'foundation_model': {'atomic_energies': None}}, r'`foundation_model` records no E0s and mace 0.3.16'),
    ],
)
def test_bad_inputs_are_refused_at_submission(mace_code, tmp_path, change, message):
    frames = copper_frames()
    variants = {
        'unlabelled_valid': lambda: without(frames, 'valid', energy=None, forces=None),
        'unlabelled_train': lambda: without(frames, 'train', energy=None, forces=None),
        'energy_only': lambda: without(frames, 'test', forces=None),
    }
    inputs = {'code': mace_code, 'dataset': PESData.from_frames(variants.get(change.get('frames'), lambda: frames)())}
    if 'hyperparameters' in change:
        inputs['hyperparameters'] = orm.Dict(change['hyperparameters'])
    if 'seed' in change:
        inputs['seed'] = orm.Int(change['seed'])
    if 'withmpi' in change:
        inputs['metadata'] = {'options': {'withmpi': True}}
    for name in ('restart_from', 'foundation_model'):
        if name in change:
            attributes = {'atomic_energies': {'Cu': -0.5}, **change[name]}
            species, architecture = attributes.pop('species', ('Cu',)), attributes.pop('architecture', 'mace')
            if attributes['atomic_energies'] is None:
                attributes.pop('atomic_energies')
            inputs[name] = fake_model(tmp_path, species, architecture, **attributes)
    if change.get('replay'):
        inputs['replay_dataset'] = PESData.from_frames(copper_frames(gold=change['replay'] == 'gold'))
    with pytest.raises(ValueError, match=message):
        run_get_node(MaceTrainCalculation, **inputs)
