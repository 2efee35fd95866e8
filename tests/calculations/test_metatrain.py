"""``MetatrainCalculation`` run for real: ``mtt train`` as a localhost code; tiny SOAP-BPNN and PET on EMT copper.

The real runs chain as a campaign would: a training killed after epoch 5 (as a scheduler kills a job at its
walltime) goes on from its checkpoint; the model it gives is used as an ASE calculator and continued on more frames
(continual learning). A tiny PET trained by ``mtt`` outside AiiDA serves as a local foundation model to fine-tune.
"""

import os
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_trainspot.calculations.metatrain import CHECKPOINT_EPOCHS, CHECKPOINT_PATH, MetatrainCalculation, run_folder
from aiida_trainspot.data import PESData, PotentialData
from aiida_trainspot.dataset import METATRAIN_KEYS, FrameBatch, write_extxyz
from aiida_trainspot.dataset.batch import SPLIT_CODES
from aiida_trainspot.training.metatrain import options_yaml, render_options, validate_hyperparameters
from tests.training.conftest import copper_frames

pytestmark = [pytest.mark.aiida, pytest.mark.real]

TINY_SOAP_BPNN = {
    'architecture': 'soap_bpnn',
    'base_precision': 64,
    'model': {
        'soap': {'max_angular': 2, 'max_radial': 3, 'cutoff': {'radius': 4.0}},
        'bpnn': {'num_hidden_layers': 1, 'num_neurons_per_layer': 16},
    },
    'training': {'num_epochs': 12, 'batch_size': 4, 'learning_rate': 0.01, 'checkpoint_interval': 2},
}
TINY_PET = {
    'architecture': 'pet',
    'base_precision': 64,
    'model': {
        'cutoff': 4.0,
        **dict.fromkeys(('d_pet', 'd_node'), 16),
        **dict.fromkeys(('d_head', 'd_feedforward'), 8),
        **dict.fromkeys(('num_heads', 'num_attention_layers', 'num_gnn_layers'), 1),
    },
    'training': {'num_epochs': 10, 'batch_size': 2, 'learning_rate': 0.01},
}
KILLED_AFTER_EPOCH = 5
"""The interrupted run is killed once it logged this epoch: checkpoint ``model_4.ckpt`` (interval 2) is complete."""


@pytest.fixture
def mtt_code(aiida_code_installed):
    """Return metatrain's ``mtt`` as a code on localhost, set up as `aiida-trainspot setup` does."""
    return aiida_code_installed(
        default_calc_job_plugin='trainspot.metatrain',
        filepath_executable=shutil.which('mtt'),
        prepend_text='export OMP_NUM_THREADS=1',
    )


@pytest.fixture(scope='module')
def killing_wrapper(tmp_path_factory):
    """Return an executable that runs ``mtt`` and kills it (SIGKILL, as at a walltime) once it logged epoch 5."""
    script = tmp_path_factory.mktemp('walltime') / 'mtt_killed_after_epoch_5'
    script.write_text(
        '#!/bin/bash\n'
        f'{shutil.which("mtt")} "$@" &\n'
        'pid=$!\n'
        f"until grep -qs '^ *{KILLED_AFTER_EPOCH},' outputs/*/*/train.csv || ! kill -0 $pid 2>/dev/null; do\n"
        '  sleep 0.1\n'
        'done\n'
        'kill -9 $pid 2>/dev/null\n'
        'wait $pid\n'
    )
    script.chmod(0o755)
    return script


@pytest.fixture(scope='module')
def runs() -> dict:
    """Return the real runs of this module by name, each made once by the first test that needs it."""
    return {}


@pytest.fixture
def copper_dataset(runs):
    """Return the stored dataset of 32 EMT copper frames: 26 `train`, 3 `valid`, 3 `test`."""
    if 'dataset' not in runs:
        runs['dataset'] = PESData.from_frames(copper_frames()).store()
    return runs['dataset']


@pytest.fixture
def interrupted(runs, aiida_code_installed, killing_wrapper, copper_dataset):
    """Return the node of a SOAP-BPNN training killed after epoch 5."""
    if 'interrupted' not in runs:
        code = aiida_code_installed(
            default_calc_job_plugin='trainspot.metatrain', filepath_executable=str(killing_wrapper)
        )
        inputs = {'dataset': copper_dataset, 'hyperparameters': orm.Dict(TINY_SOAP_BPNN), 'seed': orm.Int(11)}
        runs['interrupted'] = run_get_node(MetatrainCalculation, code=code, **inputs)[1]
    return runs['interrupted']


@pytest.fixture
def resumed(runs, mtt_code, interrupted, copper_dataset):
    """Return the node of the training that went on from the checkpoint of the interrupted one."""
    if 'resumed' not in runs:
        inputs = {'dataset': copper_dataset, 'hyperparameters': orm.Dict(TINY_SOAP_BPNN), 'seed': orm.Int(11)}
        parent_folder = interrupted.outputs.remote_folder
        runs['resumed'] = run_get_node(MetatrainCalculation, code=mtt_code, parent_folder=parent_folder, **inputs)[1]
    return runs['resumed']


def first_and_last(node, name: str) -> tuple[float, float]:
    """Return the first and last values of metric ``name`` of a calculation."""
    values = node.outputs.metrics.get_array(name)
    return values[0], values[-1]


def test_prepare_for_submission(mtt_code, copper_dataset, tmp_path):
    resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 2}
    inputs = {
        'code': mtt_code,
        'dataset': copper_dataset,
        'hyperparameters': orm.Dict(TINY_SOAP_BPNN),
        'seed': orm.Int(7),
        'metadata': {'options': {'resources': resources}},
    }
    process = instantiate_process(get_manager().get_runner(), MetatrainCalculation, **inputs)
    calcinfo = process.prepare_for_submission(Folder(str(tmp_path)))
    assert sorted(path.name for path in tmp_path.iterdir()) == ['options.yaml', 'test.xyz', 'train.xyz', 'valid.xyz']
    written = {name: PESData.from_extxyz(tmp_path / f'{name}.xyz', METATRAIN_KEYS) for name in ('train', 'valid')}
    assert (len(written['train']), len(written['valid'])) == (26, 3)
    pairs = zip(copper_dataset.iter_frames({'split': 'valid'}), written['valid'].iter_frames(), strict=True)
    for frame, read in pairs:
        np.testing.assert_allclose(read.positions, frame.positions, atol=1e-7)
        np.testing.assert_allclose(read.stress, frame.stress, atol=1e-15)
    options = yaml.safe_load((tmp_path / 'options.yaml').read_text())
    assert options['seed'] == 7
    assert options['architecture']['training'] == {**TINY_SOAP_BPNN['training'], 'log_interval': 1}
    assert options['validation_set']['targets']['energy'] == {
        'key': 'REF_energy', 'unit': 'eV', 'forces': {'key': 'REF_forces'}, 'stress': {'key': 'REF_stress'}
    }  # fmt: skip
    assert options['test_set']['systems']['read_from'] == 'test.xyz'
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.cmdline_params == ['train', 'options.yaml', '-o', 'model.pt', '-e', 'extensions']
    assert (calcinfo.local_copy_list, calcinfo.remote_copy_list) == ([], [])
    assert calcinfo.retrieve_temporary_list == ['model.pt', 'model.ckpt', 'extensions']
    assert ('outputs/*/*/train.csv', '.', 4) in calcinfo.retrieve_list
    assert calcinfo.prepend_text == 'export OMP_NUM_THREADS=2', 'the threads follow the cores of the one process'


def test_sets_without_stress_or_test_frames(mtt_code, tmp_path):
    """A validation set of clusters has no stress: no set gets the stress target (metatrain would divide by zero)."""
    valid = copper_frames(seed=3, sizes={'valid': 2})
    for frame in valid:
        frame.pbc, frame.stress = np.zeros(3, dtype=bool), None
    dataset = PESData.from_frames([*copper_frames(sizes={'train': 6}), *valid]).store()
    process = instantiate_process(get_manager().get_runner(), MetatrainCalculation, code=mtt_code, dataset=dataset)
    process.prepare_for_submission(Folder(str(tmp_path)))
    options = yaml.safe_load((tmp_path / 'options.yaml').read_text())
    assert options['training_set']['targets']['energy']['stress'] is False
    assert options['test_set'] == 0.0
    assert not (tmp_path / 'test.xyz').exists()
    assert options['architecture'] == {'name': 'pet', 'training': {'log_interval': 1}}, 'metatrain defaults'


def test_interrupted_run_is_out_of_walltime(interrupted):
    assert interrupted.exit_status == MetatrainCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status == 400
    assert 'without finishing or reporting an error' in interrupted.exit_message
    assert list(interrupted.outputs.metrics.get_array('epoch')) == list(range(1, KILLED_AFTER_EPOCH + 2))
    assert 'model' not in interrupted.outputs
    assert 'remote_folder' in interrupted.outputs


def test_resumed_run_goes_on_from_the_checkpoint(resumed, interrupted):
    assert resumed.exit_status == 0, resumed.exit_message
    log = resumed.outputs.retrieved.get_object_content('mtt.out')
    assert "Restarting training from 'restart.ckpt'" in log
    assert 'Using latest model from epoch 4' in log, 'the newest checkpoint the interrupted run saved'
    assert list(resumed.outputs.metrics.get_array('epoch')) == list(range(6, 13)), 'epochs 6 to 12 completed'
    first, _ = first_and_last(interrupted, 'valid_forces_rmse')
    _, last = first_and_last(resumed, 'valid_forces_rmse')
    assert last < 0.7 * first, 'the validation force error fell during training'
    model = resumed.outputs.model
    assert (model.architecture, model.species, model.cutoff) == ('soap_bpnn', ['Cu'], 4.0)
    attributes = model.base.attributes
    assert (attributes.get('seed'), attributes.get('dtype'), attributes.get(CHECKPOINT_EPOCHS)) == (11, 'float64', 12)
    assert attributes.get('training_set_uuid') == resumed.inputs.dataset.uuid
    assert sorted(model.base.repository.list_object_names()) == ['checkpoint', 'extensions', 'model']
    folder = run_folder(resumed.outputs.retrieved)
    assert yaml.safe_load(resumed.outputs.retrieved.get_object_content(f'{folder}/options_restart.yaml'))['seed'] == 11
    assert 'Random seed of this run is 11' in log


def test_exported_model_is_an_ase_calculator(resumed, copper_dataset):
    """The model predicts the validation frames with the errors metatrain reported for them."""
    from metatomic.torch.ase_calculator import MetatomicCalculator

    model = resumed.outputs.model
    errors = resumed.outputs.errors.get_dict()
    energies, forces = [], []
    with model.as_folder() as folder:
        calculator = MetatomicCalculator(
            folder / 'model' / model.filename, extensions_directory=folder / 'extensions', device='cpu'
        )
        for atoms in copper_dataset.to_ase({'split': 'valid'}):
            reference_energy, reference_forces = atoms.get_potential_energy(), atoms.get_forces()
            atoms.calc = calculator
            energies.append((atoms.get_potential_energy() - reference_energy) / len(atoms))
            forces.append(atoms.get_forces() - reference_forces)
    assert np.isfinite(energies).all() and np.isfinite(np.concatenate(forces)).all()
    energy_rmse = 1000 * np.sqrt(np.mean(np.square(energies)))
    forces_rmse = 1000 * np.sqrt(np.mean(np.square(np.concatenate(forces))))
    assert energy_rmse == pytest.approx(errors['valid']['energy_rmse'], rel=1e-3)
    assert forces_rmse == pytest.approx(errors['valid']['forces_rmse'], rel=1e-3)
    label_energies = [atoms.get_potential_energy() / len(atoms) for atoms in copper_dataset.to_ase({'split': 'train'})]
    assert energy_rmse < 1000 * np.std(label_energies) / 2, 'better than predicting the mean energy'
    assert set(errors) == {'train', 'valid', 'test', 'units', 'best_epoch'}
    assert errors['units']['forces'] == 'meV/Å'


def test_continual_learning_starts_where_the_model_stopped(resumed, interrupted, mtt_code):
    more_frames = copper_frames(seed=5, sizes={'train': 8})
    dataset = PESData.from_frames([*resumed.inputs.dataset.iter_frames(), *more_frames]).store()
    hyperparameters = {**TINY_SOAP_BPNN, 'training': {**TINY_SOAP_BPNN['training'], 'num_epochs': 3}}
    inputs = {'dataset': dataset, 'hyperparameters': orm.Dict(hyperparameters), 'seed': orm.Int(11)}
    results, node = run_get_node(MetatrainCalculation, code=mtt_code, restart_from=resumed.outputs.model, **inputs)
    assert node.exit_status == 0, node.exit_message
    assert list(results['metrics'].get_array('epoch')) == [13, 14, 15], 'three epochs on top of the checkpoint'
    fresh, _ = first_and_last(interrupted, 'valid_loss')
    _, previous = first_and_last(resumed, 'valid_loss')
    start, _ = first_and_last(node, 'valid_loss')
    assert start < 1.5 * previous, 'the first epoch starts near the previous final loss'
    assert start < 0.3 * fresh, 'far below that of a fresh start'
    assert results['model'].base.attributes.get('parent_model_uuid') == resumed.outputs.model.uuid
    assert results['model'].base.attributes.get(CHECKPOINT_EPOCHS) == 15


def train_pet_outside_aiida(folder) -> str:
    """Train the tiny PET with ``mtt`` in ``folder``, as one would make a foundation model; return its checkpoint."""
    folder.mkdir()
    batch = FrameBatch.from_frames(copper_frames(seed=9))
    files = {split: f'{split}.xyz' for split in ('train', 'valid')}
    for split, filename in files.items():
        with open(folder / filename, 'w', encoding='utf8') as handle:
            write_extxyz([batch.take(np.flatnonzero(batch.split == SPLIT_CODES[split]))], handle, METATRAIN_KEYS)
    options = render_options(validate_hyperparameters(TINY_PET), seed=3, files=files, stress=True)
    (folder / 'options.yaml').write_text(options_yaml(options))
    with open(folder / 'mtt.out', 'w') as stdout:
        process = subprocess.run(
            [shutil.which('mtt'), 'train', 'options.yaml'],
            cwd=folder,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env={**os.environ, 'OMP_NUM_THREADS': '1'},
            check=False,
        )
    assert process.returncode == 0, (folder / 'mtt.out').read_text()[-2000:]
    return str(folder / 'model.ckpt')


def test_finetune_from_a_local_foundation_model(mtt_code, copper_dataset, tmp_path):
    """A PET trained on other copper frames predicts the forces of these far better than zero forces do."""
    checkpoint = train_pet_outside_aiida(tmp_path / 'foundation')
    foundation = PotentialData(checkpoint, architecture='pet', species=['Cu'], cutoff=4.0).store()
    hyperparameters = {**TINY_PET, 'training': {**TINY_PET['training'], 'num_epochs': 1, 'learning_rate': 1e-4}}
    results, node = run_get_node(
        MetatrainCalculation,
        code=mtt_code,
        dataset=copper_dataset,
        hyperparameters=orm.Dict(hyperparameters),
        foundation_model=foundation,
    )
    assert node.exit_status == 0, node.exit_message
    assert "Starting finetuning from 'foundation.ckpt'" in node.outputs.retrieved.get_object_content('mtt.out')
    labels = np.concatenate([frame.forces for frame in copper_dataset.iter_frames({'split': 'valid'})])
    zero_forces_rmse = 1000 * np.sqrt(np.mean(np.square(labels)))
    assert results['metrics'].get_array('valid_forces_rmse')[0] < 0.6 * zero_forces_rmse
    model = results['model']
    assert (model.architecture, model.species, model.cutoff) == ('pet', ['Cu'], 4.0)
    assert model.base.attributes.get('parent_model_uuid') == foundation.uuid
    assert CHECKPOINT_PATH.split('/')[0] in model.base.repository.list_object_names()
    assert not model.base.attributes.get('has_extensions'), 'PET needs no extensions'


def energy_only_frames():
    """Return copper frames whose `valid` frames have an energy but no forces."""
    frames = copper_frames(sizes={'train': 4, 'valid': 2})
    for frame in frames:
        if frame.split == 'valid':
            frame.forces = None
    return frames


@pytest.mark.parametrize(
    ('case', 'message'),
    [
        ('no_valid', r'`dataset`: no labelled frame has the split tag `valid`: the validation set would be empty'),
        ('energy_only', r'`dataset`: 2 `valid` frames have an energy but no forces'),
        ('unknown_key', r'`hyperparameters`: unknown hyperparameter `training.num_epoch`; did you mean'),
        ('seed', r'`seed` must be between 0 and 2\*\*32 - 1, got -1'),
        ('foundation_elements', r"`foundation_model` does not know the elements \['Cu'\] of `dataset`"),
        ('foundation_soap', r'`foundation_model`: metatrain fine-tunes \[\'pet\'\] models, not `soap_bpnn`'),
        ('restart_epochs', r'`hyperparameters.training.num_epochs` is required with `restart_from`'),
        ('both_starts', r'give `restart_from` \(continual learning\) or `foundation_model` \(fine-tuning\), not both'),
        ('parent_folder', r'`parent_folder` must be the `remote_folder` of a `MetatrainCalculation`'),
    ],
)
def test_bad_inputs_are_refused_at_submission(mtt_code, aiida_localhost, tmp_path, case, message):
    model_file = tmp_path / 'model.ckpt'
    model_file.write_bytes(b'checkpoint')
    pet = PotentialData(model_file, architecture='pet', species=['Au'], cutoff=4.0).store()
    copper_pet = PotentialData(model_file, architecture='pet', species=['Cu'], cutoff=4.0)
    copper_pet.base.attributes.set(CHECKPOINT_EPOCHS, 4)
    copper_pet.store()
    frames = copper_frames(sizes={'train': 4, 'valid': 2})
    inputs = {'code': mtt_code, 'dataset': PESData.from_frames(frames).store()}
    if case == 'no_valid':
        inputs['dataset'] = PESData.from_frames(copper_frames(sizes={'train': 4, 'test': 2})).store()
    if case == 'energy_only':
        inputs['dataset'] = PESData.from_frames(energy_only_frames()).store()
    if case == 'unknown_key':
        inputs['hyperparameters'] = orm.Dict({'training': {'num_epoch': 3}})
    if case == 'seed':
        inputs['seed'] = orm.Int(-1)
    if case == 'foundation_elements':
        inputs['foundation_model'] = pet
    if case == 'foundation_soap':
        inputs.update(hyperparameters=orm.Dict({'architecture': 'soap_bpnn'}), foundation_model=copper_pet)
    if case == 'restart_epochs':
        inputs['restart_from'] = copper_pet
    if case == 'both_starts':
        inputs.update(restart_from=copper_pet, foundation_model=copper_pet)
    if case == 'parent_folder':
        inputs['parent_folder'] = orm.RemoteData(computer=aiida_localhost, remote_path=str(tmp_path)).store()
    with pytest.raises(ValueError, match=message):
        run_get_node(MetatrainCalculation, **inputs)
