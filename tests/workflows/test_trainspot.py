"""``TrainsPotWorkChain`` for real: a campaign on copper with EMT labels (not DFT), tiny MACE, ASE MD, evaluation.

Every number checked here is read back from the provenance graph of the finished campaign.
"""

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk

from aiida_trainspot.data import PESData, PotentialData
from aiida_trainspot.workflows.trainspot import TrainsPotWorkChain

pytestmark = [pytest.mark.aiida, pytest.mark.real]

OVERRIDES = {
    'active_learning': {'max_iterations': 1, 'max_selected': 3, 'thresholds': {'forces': 1e-6}, 'seed': 5},
    'training': {'mace_hyperparameters': {'max_num_epochs': 6}},
    'augmentation': {name: {'enabled': False} for name in ('supercell', 'slabs', 'clusters')},
    'exploration': {
        'temperatures': [600.0],
        'parameters': {'timestep': 2.0, 'steps': 12, 'thermalisation': 4, 'stride': 4},
    },
}
"""One iteration; a force threshold every explored frame exceeds, so that the selection takes the cap."""


def copper_structures() -> PESData:
    """Return a copper cell and a Cu3 molecule: the starting structures."""
    trimer = Atoms('Cu3', positions=[[0, 0, 0], [2.5, 0, 0], [1.25, 2.1, 0]], cell=[12, 12, 12])
    return PESData.from_ase([bulk('Cu', 'fcc', a=3.61, cubic=True), trimer]).store()


@pytest.fixture
def campaign_codes(ase_label_code, mace_train_code, md_code, evaluate_code):
    """Return the codes of a campaign with the EMT reference calculator in place of DFT."""
    return {'dft': ase_label_code, 'training': mace_train_code, 'md': md_code, 'evaluate': evaluate_code}


def called(node: orm.WorkflowNode, label: str) -> list[orm.ProcessNode]:
    """Return the processes ``node`` called with link labels starting with ``label``, in call order."""
    links = node.base.links.get_outgoing(link_label_filter=f'{label}%').all()
    return sorted((link.node for link in links), key=lambda child: child.ctime)


def test_campaign_on_copper_from_provenance(campaign_codes):
    structures = copper_structures()
    builder = TrainsPotWorkChain.get_builder_from_protocol(
        structures, campaign_codes, protocol='fast', overrides=OVERRIDES, calculator={'name': 'emt'}
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message

    summary = results['summary'].get_dict()
    assert summary['stop_reason'] == 'max_iterations'
    first, second = summary['iterations']
    assert (first['explored'], first['selected'], first['labelled']) == (4, 3, 3)  # 2 structures × 1 T × 2 frames
    assert second['dataset_size'] == first['dataset_size'] + 3 == len(results['dataset'])
    assert 'explored' not in second, 'the last committee is evaluated, not explored with'

    trainings = called(node, 'training')
    assert [child.is_finished_ok for child in trainings] == [True, True]
    restarted = trainings[1].inputs.restart_from
    assert {name: model.uuid for name, model in restarted.items()} == {
        name: model.uuid for name, model in trainings[0].outputs.models.items()
    }, 'the second committee continues from the first (continual learning)'
    assert {model.uuid for model in results['committee'].values()} == {
        model.uuid for model in trainings[1].outputs.models.values()
    }

    assert set(results['accuracy']) == set(results['calibration']) == {'iteration_0', 'iteration_1'}
    for name in ('iteration_0', 'iteration_1'):
        assert results['accuracy'][name]['all']['num_frames'] == summary['iterations'][int(name[-1])]['dataset_size']
        assert results['accuracy'][name]['all']['forces_rmse'] > 0
    assert len(called(node, 'exploration')) == 1 and len(called(node, 'evaluation')) == 2
    evaluated = results['evaluated_dataset']
    assert len(evaluated) == len(results['dataset'])
    assert 'force_disagreement' in next(evaluated.iter_frames()).frame_arrays


PARALLEL = {
    'active_learning': {
        'mode': 'parallel',
        'max_iterations': 1,
        'max_selected': 3,
        'seed': 5,
        'parallel': {'num_trajectories': 2, 'segment_steps': 8, 'check_every': 2, 'threshold_warmup': 2,
                     'c_x': -0.3, 'training_epochs': 1, 'convergence_epochs': 0},
    },
    'training': {'mace_hyperparameters': {'max_num_epochs': 4}},
    'augmentation': OVERRIDES['augmentation'],
    'exploration': {'temperatures': [900.0], 'parameters': {'timestep': 2.0}},
}  # fmt: skip
"""The aims-PAX loop after the first committee; no stopping criterion of its own: the batch loop's budget (3)."""


def test_campaign_in_parallel_mode(campaign_codes):
    builder = TrainsPotWorkChain.get_builder_from_protocol(
        copper_structures(), campaign_codes, protocol='fast', overrides=PARALLEL, calculator={'name': 'emt'}
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    (loop,) = called(node, 'parallel')
    loop_summary = loop.outputs.summary.get_dict()
    assert loop.inputs.active_learning['label_budget'] == 3
    assert loop.inputs.md.parameters.get_dict() == {'timestep': 2.0, 'temperature': 900.0}
    assert results['summary']['stop_reason'] == 'label_budget' == loop_summary['stop_reason']
    assert loop_summary['labelled'] >= 3
    assert (
        len(results['dataset'])
        == len(called(node, 'initial_labelling')[0].outputs.labelled_dataset) + (loop_summary['labelled'])
    )
    assert {model.uuid for model in results['committee'].values()} == {
        model.uuid for model in loop.outputs.committee.values()
    }, "the campaign's committee is the parallel loop's newest"
    assert not called(node, 'exploration'), 'the parallel loop explores; no batch exploration'
    assert len(results['evaluated_dataset']) == len(results['dataset'])
    assert set(results['accuracy']) == {'iteration_0'}


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'active_learning': {'mode': 'serial'}}, r"`active_learning.mode` must be one of \['batch', 'parallel'\]"),
        (
            {'active_learning': {'mode': 'parallel', 'parallel': {'c_x': -1.0}}},
            r'`active_learning.parallel.c_x` must be a number greater than -1',
        ),
        (
            {'active_learning': {'mode': 'parallel', 'parallel': {'valid_ratio': 1.5}}},
            r'`active_learning.parallel.valid_ratio` must lie strictly between 0 and 1',
        ),
        (
            {'active_learning': {'mode': 'parallel', 'parallel': {'max_dft_workers': 64}}},
            r'`active_learning.parallel.max_dft_workers` is 64 but computer .* runs at most',
        ),
        (
            {'active_learning': {'parallel': {'num_trajectories': 2}}},
            r'`active_learning.parallel` is only used with `mode: parallel`',
        ),
        ({'active_learning': {'max_iterations': -1}}, r'`active_learning.max_iterations` must be an integer ≥ 0'),
        ({'active_learning': {'max_selected': 0}}, r'`active_learning.max_selected` must be an integer ≥ 1'),
        ({'active_learning': {'label_budget': 0}}, r'`active_learning.label_budget` must be a positive integer'),
        (
            {'active_learning': {'thresholds': {'forces': 0.0}}},
            r'`active_learning.thresholds.forces` must be a positive',
        ),
        ({'active_learning': {'tolerances': {'energy': -1.0}}}, r'`active_learning.tolerances.energy` must be a posit'),
        (
            {'active_learning': {'tolerances': {'forces': 0.05}, 'thresholds': {'forces': 0.1}}},
            r'`active_learning.tolerances` and `active_learning.thresholds` contradict each other',
        ),
        ({'active_learning': {'targets': {'virial': 1.0}}}, r'`active_learning.targets` has unknown properties'),
        ({'active_learning': {'target_split': 'train'}}, r'`active_learning.target_split` must be one of'),
        ({'active_learning': {'selection_method': 'best'}}, r'`active_learning.selection_method` must be one of'),
        ({'active_learning': {'patience': 3}}, r"`active_learning` has unknown fields \['patience'\]"),
        ({'active_learning': {'seed': -2}}, r'`active_learning.seed` must be a non-negative integer'),
        ('no_augmentation_budget', r'`active_learning.label_budget` \(1\) is below the 2 frames of the `structures`'),
        ('empty_structures', r'`structures` has no frames'),
        ('unlabelled_dataset', r'`dataset` must hold at least 2 labelled frames'),
        ('one_member_committee', r'`committee`: a committee needs at least 2 members'),
        ('no_labelling_code', r"port 'inputs.labelling.code': required value was not provided"),
        ('labelling_code_plugin', r"port 'inputs.labelling': `code` .* runs `trainspot.md`, expected one of"),
        ('unknown_protocol', r"port 'inputs.labelling': unknown `protocol` 'ultra'"),
        (
            'training_code_plugin',
            r"port 'inputs.training.mace.train': `code` .* runs `trainspot.evaluate`, expected `trainspot.mace",
        ),
        ('one_member', r"port 'inputs.training': `num_members` must be at least 2"),
        ('md_code_plugin', r'runs `trainspot.evaluate`, expected `trainspot.md`'),
        ('evaluation_code_plugin', r'runs `trainspot.md`, expected `trainspot.evaluate`'),
        ('negative_temperature', r'`exploration`: `temperatures` must be positive numbers'),
        ('overlapping_atoms', r'`labelling`: frame 2 of `dataset`'),
    ],
)
def test_invalid_campaigns_are_rejected_naming_the_field(campaign_codes, change, message, tmp_path):
    structures = copper_structures()
    overrides = {'active_learning': change['active_learning']} if isinstance(change, dict) else {}
    processes_before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=message):  # raised by the builder or at submission: before anything runs
        builder = TrainsPotWorkChain.get_builder_from_protocol(
            structures, campaign_codes, protocol='fast', overrides=overrides, calculator={'name': 'emt'}
        )
        run_get_node(_broken(builder, change, campaign_codes, tmp_path) if isinstance(change, str) else builder)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == processes_before, 'nothing ran'


def _broken(builder, change: str, codes: dict, tmp_path):
    """Return ``builder`` with the invalid input ``change``."""
    if change == 'no_augmentation_budget':
        del builder.augmentation
        builder.active_learning = orm.Dict({'label_budget': 1})
    elif change == 'empty_structures':
        builder.structures = PESData.from_ase([]).store()
    elif change == 'unlabelled_dataset':
        builder.dataset = copper_structures()
    elif change == 'one_member_committee':
        (tmp_path / 'mace.model').write_bytes(b'not read at submission')
        model = PotentialData(tmp_path / 'mace.model', architecture='mace', species=['Cu'], cutoff=4.0, seed=0)
        builder.committee = {'member_0': model.store()}
    elif change in ('no_labelling_code', 'unknown_protocol', 'one_member'):
        _break_namespace(builder, change)
    elif change.endswith('code_plugin'):
        _wrong_code(builder, change, codes)
    elif change == 'negative_temperature':
        builder.exploration.temperatures = orm.List([-300.0])
    elif change == 'overlapping_atoms':
        close = Atoms('Cu2', positions=[[0, 0, 0], [0.3, 0, 0]], cell=[10, 10, 10])
        builder.structures = PESData.from_ase([bulk('Cu', 'fcc', a=3.61), bulk('Cu', 'fcc', a=3.7), close]).store()
    return builder


def _break_namespace(builder, change: str) -> None:
    """Break the labelling code or protocol, or the committee size of ``builder``."""
    if change == 'no_labelling_code':
        del builder.labelling.code
    elif change == 'unknown_protocol':
        builder.labelling.protocol = orm.Str('ultra')
    else:
        builder.training.num_members = orm.Int(1)


def _wrong_code(builder, change: str, codes: dict) -> None:
    """Give a stage the code of another plugin."""
    if change == 'labelling_code_plugin':
        builder.labelling.code = codes['md']
    elif change == 'training_code_plugin':
        builder.training.mace.train.code = codes['evaluate']
    elif change == 'md_code_plugin':
        builder.exploration.md.code = codes['evaluate']
    else:
        builder.evaluation.code = codes['md']


def test_overrides_reach_every_stage_and_unknown_ones_are_named(campaign_codes):
    overrides = {
        'training': {'subset_fraction': 0.5, 'max_concurrent': 1, 'mace': {'max_iterations': 2}},
        'exploration': {'max_concurrent': 1, 'md': {'metadata': {'options': {'max_wallclock_seconds': 600}}}},
        'evaluation': {'metadata': {'options': {'max_wallclock_seconds': 300}}},
        'labelling': {'max_concurrent': 1, 'max_failure_fraction': 0.25},
    }
    builder = TrainsPotWorkChain.get_builder_from_protocol(
        copper_structures(), campaign_codes, protocol='fast', overrides=overrides, calculator={'name': 'emt'}
    )
    assert builder.training.subset_fraction.value == 0.5 and builder.training.max_concurrent.value == 1
    assert builder.training.mace.max_iterations.value == 2 and builder.training.mace.train.code is not None
    assert builder.exploration.md.metadata.options.max_wallclock_seconds == 600
    assert builder.exploration.max_concurrent.value == 1 and builder.exploration.temperatures.get_list()
    assert builder.evaluation.metadata.options.max_wallclock_seconds == 300 and builder.evaluation.code is not None
    assert builder.labelling.max_failure_fraction.value == 0.25
    for stage, wrong in (('evaluation', 'device'), ('training', 'epochs'), ('labelling', 'kpoints')):
        with pytest.raises(ValueError, match=rf'`{stage}.{wrong}` is not an input'):
            TrainsPotWorkChain.get_builder_from_protocol(
                copper_structures(), campaign_codes, 'fast', overrides={stage: {wrong: 1}}, calculator={'name': 'emt'}
            )
