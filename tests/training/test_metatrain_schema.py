"""The metatrain hyperparameter schema, the census of a training set and the ``options.yaml`` (no AiiDA)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from aiida_trainspot.dataset import FrameBatch
from aiida_trainspot.training.metatrain import (
    SET_BY_CALCULATION,
    MetatrainHyperparameters,
    census_of_splits,
    default_hypers,
    model_cutoff,
    options_yaml,
    parse_hyperparameters,
    render_options,
    validate_hyperparameters,
)
from tests.training.conftest import copper_frames

pytestmark = pytest.mark.kernel

FILES = {'train': 'train.xyz', 'valid': 'valid.xyz', 'test': 'test.xyz'}


def test_defaults_are_metatrain_s_own():
    hyperparameters = validate_hyperparameters()
    assert hyperparameters == MetatrainHyperparameters(architecture='pet', model={}, training={})
    options = render_options(hyperparameters, seed=0, files=FILES, stress=True)
    assert options['architecture'] == {'name': 'pet', 'training': {'log_interval': 1}}, 'only what we set'
    assert 'base_precision' not in options and 'device' not in options


@pytest.mark.parametrize(
    ('values', 'message'),
    [
        ({'seed': 3}, r'unknown hyperparameter `seed` \(give it as the `seed` input\)'),
        ({'architecture': 'mace'}, r"`architecture` must be one of \['pet', 'soap_bpnn'\], got 'mace'"),
        ({'base_precision': 16}, r'`base_precision` must be one of \[32, 64\], got 16'),
        ({'device': 0}, r'`device` must be a string'),
        ({'training': [1]}, r'`training` must be a mapping of metatrain hyperparameters'),
        (
            {'training': {'num_epoch': 3}},
            r'unknown hyperparameter `training.num_epoch`; did you mean `training.num_epochs`',
        ),
        (
            {'architecture': 'soap_bpnn', 'model': {'soap': {'cutof': {'radius': 4.0}}}},
            r'unknown hyperparameter `model.soap.cutof`; did you mean `model.soap.cutoff`\? '
            r'\(architecture `soap_bpnn`\)',
        ),
        ({'model': {'d_pet': 8, 'soap': {}}}, r'unknown hyperparameter `model.soap` \(architecture `pet`\)'),
        (
            {'training': {'log_interval': 5}},
            r'`training.log_interval` is set by the calculation: every epoch is logged',
        ),
        (
            {'training': {'finetune': {'read_from': 'x.ckpt'}}},
            r'`training.finetune.read_from` is set by the calculation',
        ),
        ({'training': {'num_epochs': 'ten'}}, r"`training.num_epochs`: Input should be a valid integer, got 'ten'"),
        (
            {'architecture': 'soap_bpnn', 'training': {'loss': {'energy': {'weight': 'heavy'}}}},
            r"`training.loss.energy.weight`: Input should be a valid number.*got 'heavy'",
        ),
    ],
)
def test_bad_hyperparameters_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        validate_hyperparameters(values)


def test_open_sections_and_fine_tuning_methods():
    """Sections whose default is empty (``loss``, ``heads``) take keys of the user's choosing; metatrain checks them."""
    values = {'architecture': 'soap_bpnn', 'training': {'loss': {'energy': {'weight': 2.0}}}}
    assert validate_hyperparameters(values).training == values['training']
    lora = {'training': {'finetune': {'method': 'lora', 'config': {'rank': 4, 'alpha': 0.5}}}}
    assert validate_hyperparameters(lora, finetune=True).training == lora['training']
    with pytest.raises(ValueError, match=r"`training.finetune.method`: Input should be 'full', got 'retrain'"):
        validate_hyperparameters({'training': {'finetune': {'method': 'retrain'}}}, finetune=True)
    assert parse_hyperparameters({'training': {'finetune': {'method': 'retrain'}}}).architecture == 'pet'


def test_calculation_keys_exist_in_metatrain():
    """The keys the calculation sets are metatrain hyperparameters of PET (a rename in metatrain would fail here)."""
    defaults = default_hypers('pet')
    for path in SET_BY_CALCULATION:
        section = defaults
        for key in path:
            assert key in section, path
            section = section[key]


def test_options_are_accepted_by_metatrain():
    from metatrain.utils.omegaconf import expand_dataset_config
    from metatrain.utils.pydantic import validate_base_options
    from omegaconf import OmegaConf

    values = {'architecture': 'soap_bpnn', 'base_precision': 64, 'device': 'cpu', 'training': {'num_epochs': 3}}
    options = render_options(validate_hyperparameters(values), seed=42, files=FILES, stress=True, epochs=13)
    assert yaml.safe_load(options_yaml(options)) == options
    assert options['architecture']['training'] == {'num_epochs': 13, 'log_interval': 1}
    validate_base_options(options)
    (training_set,) = expand_dataset_config(OmegaConf.create(options['training_set']))
    energy = training_set['targets']['energy']
    assert (energy['key'], energy['forces']['key'], energy['stress']['key']) == (
        'REF_energy',
        'REF_forces',
        'REF_stress',
    )
    assert training_set['systems']['read_from'] == 'train.xyz'


def test_finetuning_and_sets_without_stress():
    values = {'training': {'finetune': {'method': 'full'}}}
    options = render_options(
        validate_hyperparameters(values), seed=1, files={'train': 'a.xyz', 'valid': 'b.xyz'}, stress=False,
        finetune_from='foundation.ckpt',
    )  # fmt: skip
    assert options['architecture']['training']['finetune'] == {'method': 'full', 'read_from': 'foundation.ckpt'}
    assert options['training_set']['targets']['energy']['stress'] is False
    assert options['test_set'] == 0.0


def test_census_and_stress():
    frames = copper_frames(sizes={'train': 5, 'valid': 2, 'test': 2})
    census = census_of_splits([FrameBatch.from_frames(frames)])
    assert census.labelled == {'train': 5, 'valid': 2, 'test': 2}
    assert census.with_stress == census.labelled
    assert census.splits() == ['train', 'valid', 'test'] and census.trains_stress()
    for frame in frames:
        if frame.split == 'test':
            frame.pbc, frame.stress = np.zeros(3, dtype=bool), None
        if frame.split == 'valid':
            frame.forces = None
    census = census_of_splits([FrameBatch.from_frames(frames)])
    assert census.labelled == {'train': 5, 'valid': 0, 'test': 2}, 'a frame without forces is not labelled'
    assert census.with_stress == {'train': 5, 'valid': 0, 'test': 0}
    assert not census.trains_stress(), 'the test set would have a stress target and no stress'


def test_model_cutoff_reads_each_architecture():
    assert model_cutoff('soap_bpnn', default_hypers('soap_bpnn')['model']) == 5.0
    assert model_cutoff('pet', default_hypers('pet')['model']) == 4.5
