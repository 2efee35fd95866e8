"""Training work chains: the restart handlers fire on real failures of real trainers and the work chain recovers."""

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_trainspot.data import PESData
from aiida_trainspot.workflows.training import MaceTrainingWorkChain
from tests.conftest import local_code
from tests.training.conftest import TINY_MACE, copper_frames

pytestmark = [pytest.mark.aiida, pytest.mark.real]


def test_diverging_loss_is_handled_by_a_smaller_learning_rate(mace_train_code):
    dataset = PESData.from_frames(copper_frames(seed=3)).store()
    hyperparameters = {**TINY_MACE, 'max_num_epochs': 4, 'lr': 1.0}  # 100 times the default: the loss blows up
    inputs = {
        'train': {'code': mace_train_code, 'dataset': dataset, 'hyperparameters': orm.Dict(hyperparameters)},
        'max_iterations': orm.Int(3),
    }
    results, node = run_get_node(MaceTrainingWorkChain, **inputs)
    calculations = [child for child in node.called if child.process_label == 'MaceTrainCalculation']
    assert calculations[0].exit_status == 410, 'the injected failure: the loss is not finite'
    assert node.is_finished_ok, node.exit_message
    rates = [calculation.inputs.hyperparameters['lr'] for calculation in calculations]
    assert rates == pytest.approx([1.0, 0.1])
    assert calculations[-1].is_finished_ok and 'model' in results


def test_committee_of_two_mace_members_learns(mace_train_code):
    from aiida_trainspot.workflows.committee import CommitteeTrainingWorkChain

    frames = copper_frames(seed=4)
    for frame in frames:
        frame.split = ''  # the committee tags them itself (persistent, seeded)
    inputs = {
        'dataset': PESData.from_frames(frames).store(),
        'num_members': orm.Int(2),
        'seed': orm.Int(11),
        'subset_fraction': orm.Float(0.8),
        'mace': {'train': {'code': mace_train_code, 'hyperparameters': orm.Dict(TINY_MACE)}},
    }
    results, node = run_get_node(CommitteeTrainingWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    assert sorted(results['models']) == ['member_0', 'member_1']
    seeds = [results['models'][f'member_{k}'].base.attributes.get('seed') for k in range(2)]
    assert seeds == [11, 12], 'members differ by seed'
    for metrics in results['metrics'].values():
        forces = metrics.get_array('valid_forces_rmse')
        assert forces[-1] < forces[1], 'validation force RMSE falls from the first epoch to the end'
    split_counts = results['dataset'].base.attributes.get('split_counts')
    assert split_counts['unassigned'] == 0 and split_counts['valid'] >= 1
    samples = [child for child in node.called if child.process_label == 'sample_training_frames']
    assert len(samples) == 2 and len(samples[0].outputs.result) < len(results['dataset'])


def test_committee_needs_an_engine_and_two_members(mace_train_code):
    from aiida_trainspot.workflows.committee import CommitteeTrainingWorkChain

    dataset = PESData.from_frames(copper_frames(seed=5)).store()
    mace = {'train': {'code': mace_train_code, 'hyperparameters': orm.Dict(TINY_MACE)}}
    with pytest.raises(ValueError, match='give the inputs of at least one engine'):
        run_get_node(CommitteeTrainingWorkChain, dataset=dataset)
    with pytest.raises(ValueError, match='`num_members` must be at least 2'):
        run_get_node(CommitteeTrainingWorkChain, dataset=dataset, num_members=orm.Int(1), mace=mace)
    with pytest.raises(ValueError, match="`architectures` names \\['metatrain'\\] but their inputs are missing"):
        run_get_node(CommitteeTrainingWorkChain, dataset=dataset, architectures=orm.List(['metatrain']), mace=mace)


def test_committee_mixes_mace_and_pet_members(mace_train_code, aiida_code_installed):
    from aiida_trainspot.workflows.committee import CommitteeTrainingWorkChain

    mtt_code = local_code(aiida_code_installed, 'mtt', 'trainspot.metatrain', 'install the `metatrain` extra')
    tiny_pet = {
        'architecture': 'pet',
        'model': {'cutoff': 4.0, 'd_pet': 16, 'd_node': 16, 'd_head': 8, 'd_feedforward': 8, 'num_heads': 1},
        'training': {'num_epochs': 4, 'batch_size': 4},
    }
    inputs = {
        'dataset': PESData.from_frames(copper_frames(seed=6)).store(),
        'num_members': orm.Int(2),
        'architectures': orm.List(['mace', 'metatrain']),
        'mace': {'train': {'code': mace_train_code, 'hyperparameters': orm.Dict({**TINY_MACE, 'max_num_epochs': 4})}},
        'metatrain': {'train': {'code': mtt_code, 'hyperparameters': orm.Dict(tiny_pet)}},
    }
    results, node = run_get_node(CommitteeTrainingWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    architectures = [results['models'][f'member_{k}'].base.attributes.get('architecture') for k in range(2)]
    assert architectures == ['mace', 'pet']
