"""The MACE hyperparameter schema, the checks of a training set, the E0s and the ``config.yaml`` (pure, no AiiDA)."""

import dataclasses

import numpy as np
import pytest
import yaml

from aiida_trainspot.dataset import FrameBatch
from aiida_trainspot.training.mace import (
    ARCHITECTURE_KEYS,
    E0Choice,
    MaceFiles,
    check_training_frames,
    config_yaml,
    render_config,
    select_e0s,
    summarize_training_frames,
    validate_hyperparameters,
    without_isolated_atoms,
)

from .conftest import isolated_atom

pytestmark = pytest.mark.kernel


def summary_of(frames):
    return summarize_training_frames([FrameBatch.from_frames(frames)])


def test_defaults_are_the_small_model_of_table_one():
    defaults = validate_hyperparameters()
    architecture = {name: getattr(defaults, name) for name in ARCHITECTURE_KEYS}
    assert architecture == {
        'model': 'MACE',
        'num_channels': 32,
        'max_L': 1,
        'max_ell': 3,
        'r_max': 6.0,
        'num_radial_basis': 8,
        'num_cutoff_basis': 5,
        'num_interactions': 2,
        'correlation': 3,
        'radial_MLP': (32, 32, 32),
        'MLP_irreps': '128x0e',
        'gate': 'silu',
        'scaling': 'rms_forces_scaling',
    }
    training = (defaults.lr, defaults.ema, defaults.ema_decay, defaults.energy_weight, defaults.forces_weight)
    assert training == (0.01, True, 0.99, 1.0, 1000.0)
    assert (defaults.batch_size, defaults.clip_grad, defaults.lr_factor, defaults.scheduler_patience) == (
        5,
        10.0,
        0.8,
        5,
    )
    assert defaults.default_dtype == 'float64'


def test_values_override_defaults_and_are_typed():
    hyperparameters = validate_hyperparameters({'num_channels': 8, 'r_max': 4, 'radial_MLP': [16, 16]})
    assert (hyperparameters.num_channels, hyperparameters.r_max, hyperparameters.radial_MLP) == (8, 4.0, (16, 16))
    assert isinstance(hyperparameters.r_max, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hyperparameters.lr = 1.0


@pytest.mark.parametrize(
    ('values', 'message'),
    [
        ({'num_channel': 8}, r'unknown hyperparameter `num_channel`; known: model, num_channels'),
        ({'seed': 3}, r'unknown hyperparameter `seed` \(give it as the `seed` input\)'),
        ({'num_channels': True}, r'`num_channels` must be an integer, got True'),
        ({'num_channels': 0}, r'`num_channels` must be at least 1, got 0'),
        ({'lr': 'fast'}, r"`lr` must be a finite number, got 'fast'"),
        ({'lr': 0.0}, r'`lr` must be positive, got 0.0'),
        ({'ema': 'yes'}, r"`ema` must be true or false, got 'yes'"),
        ({'default_dtype': 'float16'}, r"`default_dtype` must be one of \['float64', 'float32'\], got 'float16'"),
        ({'radial_MLP': [16, 0]}, r'`radial_MLP` must be a non-empty list of positive integers'),
        ({'MLP_irreps': '16x1o'}, r'`MLP_irreps` must be scalar irreps like `16x0e`'),
        ({'ema_decay': 1.0}, r'`ema_decay` must be below 1'),
        ({'swa': True, 'start_swa': 10, 'max_num_epochs': 10}, r'`start_swa` must be below `max_num_epochs` \(10\)'),
    ],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        validate_hyperparameters(values)


def test_render_config_is_read_back_as_written():
    hyperparameters = validate_hyperparameters({'num_channels': 8, 'radial_MLP': [16, 16], 'lr': 0.005})
    e0s = E0Choice({29: -0.25, 79: -0.125}, True)
    config = render_config(hyperparameters, seed=7, files=MaceFiles(), e0s=e0s, train_with_stress=4)
    text = config_yaml(config)
    read = yaml.safe_load(text)
    assert list(read)[:8] == [
        'name',
        'seed',
        'train_file',
        'valid_file',
        'test_file',
        'energy_key',
        'forces_key',
        'stress_key',
    ]
    assert read['seed'] == 7
    assert (read['train_file'], read['valid_file'], read['test_file']) == ('train.xyz', 'valid.xyz', 'test.xyz')
    assert (read['energy_key'], read['forces_key'], read['stress_key']) == ('REF_energy', 'REF_forces', 'REF_stress')
    assert read['E0s'] == '{29: -0.25, 79: -0.125}'
    assert read['radial_MLP'] == '[16, 16]'
    assert (read['num_channels'], read['lr'], read['r_max'], read['max_L']) == (8, 0.005, 6.0, 1)
    assert (read['loss'], read['error_table']) == ('stress', 'PerAtomRMSEstressvirials')
    assert (read['restart_latest'], read['save_cpu'], read['plot'], read['pin_memory']) == (False, True, False, False)
    assert 'foundation_model' not in read
    assert 'swa_lr' not in read, 'stage-two settings are only written with `swa`'


def test_render_config_without_stress_or_test_frames():
    config = render_config(
        validate_hyperparameters(),
        seed=0,
        files=MaceFiles(test=None),
        e0s=E0Choice('average', False),
        train_with_stress=0,
    )
    assert (config['loss'], config['error_table'], config['E0s']) == ('weighted', 'PerAtomRMSE', 'average')
    assert 'test_file' not in config


def test_render_config_starting_from_a_model():
    hyperparameters = validate_hyperparameters({'max_num_epochs': 3})
    files = MaceFiles(start_model='start.model')
    config = render_config(hyperparameters, seed=1, files=files, e0s=E0Choice('foundation', False), train_with_stress=1)
    assert not set(ARCHITECTURE_KEYS) & set(config), 'the architecture is that of the starting model'
    assert (config['foundation_model'], config['multiheads_finetuning'], config['E0s']) == (
        'start.model',
        False,
        'foundation',
    )
    assert 'pt_train_file' not in config
    replay = render_config(
        hyperparameters,
        seed=1,
        files=MaceFiles(start_model='start.model', replay='replay.xyz'),
        e0s=E0Choice('foundation', False),
        train_with_stress=1,
        restart_latest=True,
    )
    assert (replay['multiheads_finetuning'], replay['pt_train_file'], replay['force_mh_ft_lr']) == (
        True,
        'replay.xyz',
        True,
    )
    assert replay['restart_latest'] is True


def test_summary_counts_labelled_frames_per_split(emt_copper_frames):
    unlabelled = dataclasses.replace(emt_copper_frames[0], energy=None, forces=None, stress=None, split='train')
    energy_only = dataclasses.replace(emt_copper_frames[1], forces=None, split='valid')
    frames = [*emt_copper_frames, unlabelled, energy_only, isolated_atom('Cu', -0.1)]
    summary = summary_of(frames)
    assert summary.labelled == {'train': 27, 'valid': 3, 'test': 3}
    assert summary.energy_without_forces == {'train': 0, 'valid': 1, 'test': 0}
    assert (summary.train_isolated_atoms, summary.train_with_stress) == (1, 26)
    assert summary.isolated_atom_energies == {'Cu': -0.1}
    assert summary.species == {'train': {'Cu'}, 'valid': {'Cu'}, 'test': {'Cu'}}


def test_check_training_frames(emt_copper_frames):
    assert check_training_frames(summary_of(emt_copper_frames), batch_size=5) is None
    too_few = check_training_frames(summary_of(emt_copper_frames), batch_size=27)
    assert too_few.startswith('26 labelled `train` frames (isolated atoms apart) are fewer than')
    no_valid = [
        dataclasses.replace(frame, split='train') if frame.split == 'valid' else frame for frame in emt_copper_frames
    ]
    assert check_training_frames(summary_of(no_valid), 5) == (
        'no labelled frame has the split tag `valid`: the validation set would be empty'
    )
    no_train = [frame for frame in emt_copper_frames if frame.split != 'train']
    assert check_training_frames(summary_of(no_train), 5) == 'no labelled frame has the split tag `train`'
    energy_only = [dataclasses.replace(emt_copper_frames[0], forces=None, split='test'), *emt_copper_frames]
    assert check_training_frames(summary_of(energy_only), 5).startswith('1 `test` frames have an energy but no forces')
    gold = isolated_atom('Au', -0.2, split='test')
    assert check_training_frames(summary_of([*emt_copper_frames, gold]), 5) == (
        "elements ['Au'] are in `valid` or `test` frames but in no `train` frame"
    )


def test_e0s_from_isolated_atoms_else_starting_model_else_fitted(emt_copper_frames):
    complete = summary_of([*emt_copper_frames, isolated_atom('Cu', -0.1)])
    assert select_e0s(complete, {'Cu': 5.0}, True) == E0Choice({29: -0.1}, True)
    none = summary_of(emt_copper_frames)
    assert select_e0s(none, None, False) == E0Choice('average', False)
    assert select_e0s(none, {'Cu': 0.5, 'Au': 0.25}, True) == E0Choice({29: 0.5}, False)
    assert select_e0s(none, {'Au': 0.25}, True) == E0Choice('foundation', False)
    assert select_e0s(none, None, True) == E0Choice('foundation', False)


def test_partial_isolated_atoms_are_fitted_and_left_out(emt_copper_frames):
    gold = dataclasses.replace(emt_copper_frames[0], numbers=np.array([79, 29, 29, 29])[: emt_copper_frames[0].natoms])
    frames = [*emt_copper_frames, gold, isolated_atom('Cu', -0.1)]
    summary = summary_of(frames)
    assert select_e0s(summary, None, False) == E0Choice('average', False), 'no E0 for gold: fit them all'
    batch = FrameBatch.from_frames(frames)
    (kept,) = without_isolated_atoms([batch])
    assert len(kept) == len(frames) - 1
    assert kept.natoms.min() > 1


@pytest.mark.real
def test_mace_reads_the_config_as_meant(tmp_path):
    """MACE's own argument parser reads the file: every value arrives with the type ``mace_run_train`` expects."""
    from mace.tools.arg_parser import build_default_arg_parser

    hyperparameters = validate_hyperparameters({'radial_MLP': [16, 16], 'ema': False, 'swa': True, 'start_swa': 40})
    files = MaceFiles(start_model='start.model')
    config = render_config(hyperparameters, seed=11, files=files, e0s=E0Choice({29: -0.5}, False), train_with_stress=0)
    (tmp_path / 'config.yaml').write_text(config_yaml(config))
    arguments = build_default_arg_parser().parse_args(['--config', str(tmp_path / 'config.yaml')])
    assert (arguments.name, arguments.seed, arguments.E0s) == ('mace', 11, '{29: -0.5}')
    assert (arguments.ema, arguments.amsgrad, arguments.swa, arguments.start_swa) == (False, True, True, 40)
    assert (arguments.foundation_model, arguments.multiheads_finetuning) == ('start.model', False)
    assert (arguments.forces_weight, arguments.batch_size, arguments.loss) == (1000.0, 5, 'weighted')
    assert (arguments.energy_key, arguments.forces_key, arguments.stress_key) == (
        'REF_energy',
        'REF_forces',
        'REF_stress',
    )
    assert arguments.restart_latest is False and arguments.save_cpu is True
