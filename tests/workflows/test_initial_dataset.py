"""``InitialDatasetWorkChain`` for real: a tiny MACE "general model" drives ASE MD on copper, EMT labels (not DFT).

Every number checked here is read back from the provenance graph of the finished work chain.
"""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from aiida_trainspot.data import PESData, PotentialData
from aiida_trainspot.dataset import frame_from_atoms
from aiida_trainspot.workflows.initial_dataset import InitialDatasetWorkChain
from tests.training.conftest import copper_frames, real_mace_run

pytestmark = [pytest.mark.aiida, pytest.mark.real]

TERSOFF = '/usr/share/lammps/potentials/SiC.tersoff'
SAMPLING = {'temperatures': [600.0], 'parameters': {'timestep': 2.0, 'steps': 24, 'thermalisation': 4, 'stride': 4}}
"""Five frames per structure and round: steps 8, 12, 16, 20 and 24 after 4 steps of thermalisation."""


@pytest.fixture(scope='module')
def general_model(tmp_path_factory) -> PotentialData:
    """Return a tiny MACE model trained on EMT copper (once per session): the general model that drives the MD."""
    path = real_mace_run(tmp_path_factory.getbasetemp()) / 'mace.model'
    return PotentialData(path, architecture='mace', species=['Cu'], cutoff=4.0, seed=0).store()


@pytest.fixture
def codes(ase_label_code, mace_train_code, md_code):
    """Return the codes, with the EMT reference calculator in place of DFT."""
    return {'dft': ase_label_code, 'training': mace_train_code, 'md': md_code}


def copper_structures(*extra: Atoms) -> PESData:
    """Return a cubic copper cell (4 atoms) and a two-atom copper cell, and ``extra``: the starting geometries."""
    return PESData.from_ase([bulk('Cu', 'fcc', a=3.61, cubic=True), bulk('Cu', 'fcc', a=3.61) * (1, 1, 2), *extra])


def builder_of(model, codes, parameters: dict, structures: PESData | None = None, **overrides):
    """Return the builder of the fast protocol on copper with short MD and ``parameters``."""
    structures = structures if structures is not None else copper_structures().store()
    overrides = {'parameters': parameters, 'sampling': SAMPLING, **overrides}
    return InitialDatasetWorkChain.get_builder_from_protocol(
        structures, model, codes, protocol='fast', overrides=overrides, calculator={'name': 'emt'}
    )


def called(node: orm.WorkflowNode, label: str) -> list[orm.ProcessNode]:
    """Return the processes ``node`` called with link labels starting with ``label``, in call order."""
    links = node.base.links.get_outgoing(link_label_filter=f'{label}%').all()
    return sorted((link.node for link in links), key=lambda child: child.ctime)


def fingerprints(dataset: PESData, split: str) -> set[bytes]:
    """Return the positions of the ``split`` frames of ``dataset``, as bytes: one per frame."""
    return {np.round(frame.positions, 6).tobytes() for frame in dataset.iter_frames({'split': split})}


def test_two_rounds_grow_the_dataset_and_continue_the_committee(general_model, codes):
    builder = builder_of(general_model, codes, {'max_rounds': 2, 'epochs_per_round': 2, 'seed': 3})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message

    summary = results['summary'].get_dict()
    assert summary['stop_reason'] == 'max_rounds' and summary['num_rounds'] == 2 and summary['total_epochs'] == 4
    first, second = summary['rounds']
    assert (first['sampled'], first['labelled'], first['dataset_size']) == (10, 10, 10)  # 2 structures × 5 frames
    assert (second['sampled'], second['dataset_size']) == (10, 20) and len(results['dataset']) == 20
    for record in (first, second):
        assert record['epochs'] == 2 and len(record['member_force_mae']) == 2
        assert record['force_mae'] == pytest.approx(np.mean(record['member_force_mae'])) and record['force_mae'] > 0
    assert results['dataset'].base.attributes.get('split_counts')['unassigned'] == 0

    samplings = called(node, 'sampling')
    assert [child.inputs.seed.value for child in samplings] == [3, 1003], 'a new MD seed every round'
    assert all(child.inputs.md.models['member_0'].uuid == general_model.uuid for child in samplings)
    merge = called(node, 'merge')[0]
    assert merge.inputs.new.uuid == called(node, 'labelling')[1].outputs.labelled_dataset.uuid
    assert len(merge.outputs.result) == len(merge.inputs.dataset) + 10, 'the dataset grows by the labelled frames'

    trainings = called(node, 'training')
    assert 'restart_from' not in trainings[0].inputs
    assert {name: model.uuid for name, model in trainings[1].inputs.restart_from.items()} == {
        name: model.uuid for name, model in trainings[0].outputs.models.items()
    }, 'round 2 starts from the models of round 1 (continual learning)'
    assert {name: model.uuid for name, model in results['committee'].items()} == {
        name: model.uuid for name, model in trainings[1].outputs.models.items()
    }
    calculations = [
        calc for member in called(trainings[1], 'member') for calc in member.called if 'dataset' in calc.inputs
    ]
    assert [calc.inputs.hyperparameters['max_num_epochs'] for calc in calculations] == [2, 2]
    assert all('restart_from' in calc.inputs for calc in calculations)

    shares = [child.outputs.result for child in called(trainings[1], 'share')]
    assert len(shares) == 2
    train = [fingerprints(share, 'train') for share in shares]
    assert train[0] and train[1] and not train[0] & train[1], 'members train on disjoint frames'
    assert train[0] | train[1] == fingerprints(trainings[1].outputs.dataset, 'train')
    valid = [fingerprints(share, 'valid') for share in shares]
    assert valid[0] == valid[1] == fingerprints(trainings[1].outputs.dataset, 'valid') and valid[0]


def emt_diamonds(count: int, splits: tuple[str, ...]) -> PESData:
    """Return ``count`` rattled and strained diamond cells labelled by EMT (not DFT), tagged with ``splits``."""
    frames = []
    for index in range(count):
        atoms = bulk('C', 'diamond', a=3.567 * (0.98 + 0.01 * (index % 4)), cubic=True)
        atoms.rattle(0.05, seed=index)
        atoms.calc = EMT()
        atoms.get_stress()
        atoms.info['split'] = splits[index % len(splits)]
        frames.append(frame_from_atoms(atoms))
    return PESData.from_frames(frames).store()


def test_a_classical_potential_in_lammps_stops_on_accuracy_within_the_dataset_size(codes, lammps_code):
    """Tersoff carbon in LAMMPS makes the geometries; 8 given frames and a generous accuracy: one round."""
    dataset = emt_diamonds(8, ('train', 'train', 'valid', 'train', 'train', 'test', 'train', 'train'))
    structures = PESData.from_ase([bulk('C', 'diamond', a=3.567, cubic=True)]).store()
    parameters = {'desired_accuracy': 50.0, 'max_rounds': 3, 'max_dataset_size': 11, 'epochs_per_round': 2}
    sampling = {
        'driver': 'lammps',
        'temperatures': [600.0],
        'parameters': {'timestep': 0.5, 'steps': 240, 'thermalisation': 40, 'stride': 40},
        'lammps': {'pair_style': 'tersoff'},
    }
    tersoff = orm.SinglefileData(TERSOFF).store()
    builder = builder_of(tersoff, {**codes, 'lammps': lammps_code}, parameters, structures, sampling=sampling)
    builder.dataset = dataset
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    summary = results['summary'].get_dict()
    assert summary['stop_reason'] == 'desired_accuracy' and summary['num_rounds'] == 1, 'accuracy comes first'
    assert summary['target_force_mae'] == pytest.approx(500.0), '50 eV/Å × the default scale of 10'
    assert summary['rounds'][0]['force_mae'] <= 500.0
    assert summary['rounds'][0]['sampled'] == 3, '5 frames sampled, 3 fit in `max_dataset_size` after the 8 given'
    assert len(results['dataset']) == 11 and len(called(node, 'within_max_dataset_size')) == 1
    (sampling_node,) = called(node, 'sampling')
    assert sampling_node.inputs.lammps.potential.uuid == tersoff.uuid
    assert len(called(node, 'training')) == 1


def gold_copper() -> Atoms:
    """Return a copper cell with one gold atom."""
    atoms = bulk('Cu', 'fcc', a=3.61, cubic=True)
    atoms.symbols[0] = 'Au'
    return atoms


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ('gold', r"`general_model` knows species \['Cu'\] but structure 2 has \['Au'\]"),
        ({'parameters': {'patience': 3}}, r"`parameters` has unknown fields \['patience'\]"),
        (
            {'parameters': {'desired_accuracy': None, 'max_rounds': None}},
            r'`parameters` gives no stopping criterion: set at least one of',
        ),
        ({'parameters': {'desired_accuracy': 0.0}}, r'`parameters.desired_accuracy` must be a positive number'),
        ({'parameters': {'desired_accuracy': -0.1}}, r'`parameters.desired_accuracy` must be a positive number'),
        ({'parameters': {'max_rounds': 0}}, r'`parameters.max_rounds` must be a positive integer'),
        ({'parameters': {'epochs_per_round': 2.5}}, r'`parameters.epochs_per_round` must be a positive integer'),
        (
            {'training': {'mace_hyperparameters': {'max_num_epochs': 3}}},
            r'`training.mace.train.hyperparameters.max_num_epochs` is set by the rounds',
        ),
        (
            {'training': {'distinct_subsets': True, 'subset_fraction': 0.5}},
            r'`distinct_subsets` and `subset_fraction` exclude each other',
        ),
        ({'sampling': {'temperatures': [-5.0]}}, r'`sampling`: `temperatures` must be positive numbers'),
        ({'sampling': {'colour': 'red'}}, r'`sampling.colour` is not an input'),
        ({'sampling': {'driver': 'lammps'}}, r'`sampling`: the `lammps` driver needs `lammps.code`'),
        ('potential_file', r'`general_model` is a potential file: it needs `sampling.driver` `lammps`'),
        ('full_dataset', r'`dataset` holds 8 frames already, `parameters.max_dataset_size` is 8'),
        ('unlabelled_dataset', r'`dataset` must hold labelled frames only: 2 of its 2 frames are not labelled'),
    ],
)
def test_bad_inputs_are_rejected_at_submission_naming_the_field(general_model, codes, change, message, tmp_path):
    processes_before = orm.QueryBuilder().append(orm.ProcessNode).count()
    overrides = change if isinstance(change, dict) else {}
    parameters = {'max_rounds': 1, **overrides.pop('parameters', {})}
    structures = copper_structures(gold_copper() if change == 'gold' else bulk('Cu', 'fcc', a=3.7)).store()
    model = general_model
    if change == 'potential_file':
        (tmp_path / 'Cu.eam').write_text('not read at submission')
        model = orm.SinglefileData(tmp_path / 'Cu.eam').store()
    with pytest.raises(ValueError, match=message):  # raised by the builder or at submission: before anything runs
        builder = builder_of(model, codes, parameters, structures, **overrides)
        if change == 'full_dataset':
            builder.parameters = orm.Dict({'max_dataset_size': 8})
            builder.dataset = PESData.from_frames(copper_frames(sizes={'train': 6, 'valid': 1, 'test': 1})).store()
        elif change == 'unlabelled_dataset':
            builder.dataset = copper_structures().store()
        run_get_node(builder)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == processes_before, 'nothing ran'


@pytest.mark.parametrize('protocol', ['fast', 'balanced', 'stringent'])
def test_protocols_sample_every_25_steps_and_leave_the_epochs_to_the_rounds(general_model, codes, protocol):
    builder = InitialDatasetWorkChain.get_builder_from_protocol(
        copper_structures().store(), general_model, codes, protocol=protocol, calculator={'name': 'emt'}
    )
    assert builder.sampling.parameters['stride'] == 25
    assert builder.labelling.protocol.value == protocol
    parameters = builder.parameters.get_dict()
    assert parameters['accuracy_scale'] == 10.0 and parameters['epochs_per_round'] == 5
    assert 'max_num_epochs' not in builder.training.mace.train.hyperparameters.get_dict()
    assert builder.sampling.md.code.uuid == codes['md'].uuid


def test_committee_with_distinct_subsets_needs_a_training_frame_per_member(mace_train_code):
    from aiida_trainspot.workflows.committee import CommitteeTrainingWorkChain

    inputs = {
        'dataset': PESData.from_frames(copper_frames(sizes={'train': 2, 'valid': 1, 'test': 0})).store(),
        'num_members': orm.Int(3),
        'distinct_subsets': orm.Bool(True),
        'mace': {'train': {'code': mace_train_code}},
    }
    _, node = run_get_node(CommitteeTrainingWorkChain, **inputs)
    assert node.exit_status == 411 and '2 training frames cannot be dealt out to 3 members' in node.exit_message
    assert not [child for child in node.called if child.process_label == 'MaceTrainingWorkChain']
