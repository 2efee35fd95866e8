"""``ParallelActiveLearningWorkChain`` for real: tiny MACE committee, ASE MD segments, EMT labels, real pw.x failures.

What is checked is read back from the provenance graph: which child ran when, from which inputs.
"""

import itertools

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.data import chemical_symbols

from aiida_trainspot.data import PESData, PotentialData
from aiida_trainspot.training.mace_outputs import parse_log
from aiida_trainspot.workflows.pax import ParallelActiveLearningWorkChain
from tests.training.conftest import TINY_MACE, copper_frames, isolated_atom, run_mace

pytestmark = [pytest.mark.aiida, pytest.mark.real]

LOOP = {
    'num_trajectories': 3,
    'segment_steps': 16,
    'check_every': 2,
    'threshold_warmup': 4,
    'c_x': -0.3,
    'max_dft_workers': 1,
    'label_budget': 7,
    'training_epochs': 2,
    'convergence_epochs': 2,
    'seed': 3,
}
"""Short segments and a threshold below the mean disagreement (``c_x`` < 0), so frames cross it often."""
MD = {'temperature': 900.0, 'timestep': 2.0}


def copper_dataset_frames() -> list:
    """Return the EMT copper frames and an isolated copper atom (its E0, which continual learning needs)."""
    atom = Atoms('Cu', cell=[12, 12, 12], pbc=False)
    atom.calc = EMT()
    return [*copper_frames(), isolated_atom('Cu', atom.get_potential_energy())]


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    """Return two tiny MACE models trained on EMT copper with seeds 0 and 1: a committee that disagrees."""
    paths = []
    for seed in (0, 1):
        folder = tmp_path_factory.getbasetemp() / f'mace_pax_seed{seed}'
        if not (folder / 'mace.model').exists():
            process = run_mace(folder, copper_dataset_frames(), TINY_MACE, seed=seed)
            assert process.returncode == 0, (folder / 'mace.err').read_text()[-2000:]
        paths.append(folder / 'mace.model')
    return paths


def committee(paths) -> dict[str, PotentialData]:
    """Return the stored committee of the model files ``paths``, with the E0s their runs printed (as the parser)."""
    members = {}
    for k, path in enumerate(paths):
        model = PotentialData(path, architecture='mace', species=['Cu'], cutoff=4.0, seed=k)
        log = path.with_name('mace.out')
        if log.exists():
            energies = parse_log(log.read_text()).atomic_energies
            model.base.attributes.set('atomic_energies', {chemical_symbols[z]: e for z, e in energies.items()})
        members[f'member_{k}'] = model.store()
    return members


def builder_for(model_files, codes, labelling, loop=None):
    """Return a builder of the parallel loop on two copper cells with the EMT-trained committee."""
    builder = ParallelActiveLearningWorkChain.get_builder()
    cells = [bulk('Cu', 'fcc', a=3.61, cubic=True), bulk('Cu', 'fcc', a=3.7) * (2, 1, 1)]
    builder.structures = PESData.from_ase(cells).store()
    builder.dataset = PESData.from_frames(copper_dataset_frames()).store()
    builder.committee = committee(model_files)
    builder.active_learning = orm.Dict({**LOOP, **(loop or {})})
    builder.md.code, builder.md.parameters = codes['md'], orm.Dict(MD)
    builder.labelling.update(labelling)
    hyperparameters = {**TINY_MACE, 'batch_size': 4, 'valid_batch_size': 4}
    builder.training.mace = {'train': {'code': codes['training'], 'hyperparameters': orm.Dict(hyperparameters)}}
    return builder


def interval(node: orm.ProcessNode) -> tuple:
    """Return when ``node`` was created and when it was last modified (sealed at its end)."""
    return node.ctime, node.mtime


def overlaps(first: orm.ProcessNode, second: orm.ProcessNode) -> bool:
    """Return whether the lifetimes of two processes overlap."""
    (start_a, end_a), (start_b, end_b) = interval(first), interval(second)
    return start_a < end_b and start_b < end_a


def children(node: orm.WorkflowNode, prefix: str) -> list[orm.ProcessNode]:
    """Return the processes ``node`` called with a link label starting with ``prefix``, by creation time."""
    links = node.base.links.get_outgoing(link_label_filter=f'{prefix}%').all()
    return sorted((link.node for link in links), key=lambda child: child.ctime)


def start_models(chunk: orm.WorkflowNode) -> dict[str, str]:
    """Return the UUID of the model each member of a training chunk starts from (given, or of the resumed run)."""
    given = chunk.inputs.restart_from.items() if 'restart_from' in chunk.inputs else []
    resumed = chunk.inputs.resume_from.items() if 'resume_from' in chunk.inputs else []
    return {
        **{name: model.uuid for name, model in given},
        **{name: folder.creator.outputs.model.uuid for name, folder in resumed},
    }


def trajectory_of(label: str) -> int:
    """Return the trajectory of a call link label ``md_<t>_<segment>`` or ``labelling_<t>_<segment>``."""
    return int(label.split('_')[1])


def test_dft_md_and_training_overlap_in_provenance(model_files, md_code, ase_label_code, mace_train_code):
    codes = {'md': md_code, 'training': mace_train_code}
    labelling = {'code': ase_label_code, 'calculator': orm.Dict({'name': 'emt'})}
    results, node = run_get_node(builder_for(model_files, codes, labelling))
    assert node.is_finished_ok, node.exit_message

    summary = results['summary'].get_dict()
    assert summary['stop_reason'] == 'label_budget'
    assert summary['labelled'] == LOOP['label_budget']  # the running DFT counts: never one more
    assert len(results['dataset']) == len(copper_dataset_frames()) + summary['labelled']
    assert summary['routed']['train'] + summary['routed']['valid'] == summary['labelled']

    links = {link.node.pk: link.link_label for link in node.base.links.get_outgoing().all()}
    segments = [child for child in children(node, 'md_') if child.process_label == 'MdCalculation']
    labellings = children(node, 'labelling_')
    trainings = children(node, 'training_')
    assert len(labellings) == summary['labelled'] + summary['failed_labels']
    assert len(labellings) <= summary['crossings']
    assert trainings, 'a training frame starts a training chunk'
    crossed = [segment for segment in segments if segment.outputs.output_parameters['stop_reason'].startswith('uncert')]
    assert crossed
    for segment in crossed:  # each check against the threshold its segment carried on, the last one above it
        uncertainty, threshold = (segment.outputs.trace.get_array(name) for name in ('uncertainty', 'threshold'))
        assert uncertainty[-1] > threshold[-1] and not np.any(uncertainty[:-1] > threshold[:-1])

    concurrent = [
        labelling
        for labelling in labellings
        if any(overlaps(labelling, training) for training in trainings)
        and any(
            overlaps(labelling, segment) and trajectory_of(links[segment.pk]) != trajectory_of(links[labelling.pk])
            for segment in segments
        )
    ]
    assert concurrent, 'the DFT of one frame ran while other trajectories ran MD and the committee trained'

    assert len(trainings) >= 2, 'training frames arrived during the first chunk: a second chunk follows'
    for previous, chunk in itertools.pairwise(trainings):
        assert start_models(chunk) == {name: model.uuid for name, model in previous.outputs.models.items()}, (
            'every chunk continues from the newest committee'
        )
    resumed = trainings[1].inputs.resume_from
    assert {name: folder.uuid for name, folder in resumed.items()} == {
        name: folder.uuid for name, folder in trainings[0].outputs.remote_folders.items()
    }, 'after a first chunk (an improvement) every MACE member keeps its optimizer: it resumes from its checkpoint'
    newest = trainings[0]
    later = [segment for segment in segments if segment.ctime > newest.mtime]
    assert later, 'segments started after the first chunk ended'
    assert {model.uuid for model in later[0].inputs.models.values()} <= {
        model.uuid for chunk in trainings for model in chunk.outputs.models.values()
    }, 'new segments use a newer committee'
    assert 'model' in results and results['model'].uuid not in {model.uuid for model in results['committee'].values()}


def test_failed_dft_sends_the_trajectory_back_to_its_checkpoint(
    model_files, md_code, mace_train_code, pw_code, pseudo_family
):
    codes = {'md': md_code, 'training': mace_train_code}
    overrides = {
        'pw': {'parameters': {'SYSTEM': {'ecutwfc': 25.0, 'ecutrho': 200.0}, 'ELECTRONS': {'electron_maxstep': 1}}},
        'handler_overrides': {'handle_electronic_convergence_not_reached': {'enabled': False}},
    }
    labelling = {
        'code': pw_code,
        'pseudo_family': orm.Str(pseudo_family.label),
        'protocol': orm.Str('fast'),
        'overrides': orm.Dict({**overrides, 'kpoints_distance': 0.5}),
        'options': orm.Dict({'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}),
    }
    loop = {'num_trajectories': 1, 'label_budget': None, 'max_md_steps': 40, 'convergence_epochs': 0}
    results, node = run_get_node(builder_for(model_files, codes, labelling, loop))
    assert node.is_finished_ok, node.exit_message
    summary = results['summary'].get_dict()
    assert summary['stop_reason'] == 'max_md_steps'
    assert summary['labelled'] == 0 and summary['failed_labels'] >= 1

    start = next(link.node for link in node.base.links.get_outgoing(link_label_filter='start_0').all())
    checkpoint = start.outputs.result
    segments = children(node, 'md_0_')
    failed = children(node, 'labelling_0_')[0]
    assert not failed.is_finished_ok
    after = [segment for segment in segments if segment.ctime > failed.mtime]
    assert after, 'the trajectory went on after the failed DFT'
    assert after[0].inputs.structures.uuid == checkpoint.uuid, 'it went on from its checkpoint, the start'


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'loop': {'threshold_window': 0}}, r'`active_learning`: `threshold_window` must be a positive integer, got 0'),
        ({'loop': {'c_x': -1.0}}, r'`c_x` must be a number greater than -1'),
        ({'loop': {'valid_ratio': 1.0}}, r'`valid_ratio` must lie strictly between 0 and 1'),
        ({'loop': {'max_dft_workers': 64}}, r'`active_learning.max_dft_workers` is 64 but computer .* runs at most'),
        ({'loop': {'label_budget': None}}, r'set at least one stopping criterion'),
        ({'species': ['Au']}, r"`committee` knows \['Au'\] but `structures` also hold \['Cu'\]"),
        ({'members': 1}, r'`committee` needs at least 2 members'),
        ({'md': {'steps': 100}}, r"`md.parameters` must not set \['steps'\]"),
        ({'md': {'ensemble': 'npt', 'pressure': 1.0}}, r'structure 2 is not periodic'),
        ({'single_atom': True}, r'frame 2 of `structures` has one atom'),
    ],
)
def test_bad_inputs_are_rejected_at_submission(
    change, message, tmp_path, md_code, ase_label_code, mace_train_code, aiida_code_installed
):
    (tmp_path / 'mace.model').write_bytes(b'not read at submission')
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=message):  # by the builder or at submission: before anything runs
        run_get_node(broken_builder(change, tmp_path / 'mace.model', [md_code, ase_label_code, mace_train_code]))
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before, 'nothing ran'


def broken_builder(change: dict, path, codes: list):
    """Return a builder with the invalid input ``change`` (dummy model files: not read at submission)."""
    md_code, label_code, train_code = codes
    paths = [path] * change.get('members', 2)
    labelling = {'code': label_code, 'calculator': orm.Dict({'name': 'emt'})}
    builder = builder_for(paths, {'md': md_code, 'training': train_code}, labelling, change.get('loop'))
    if 'species' in change:
        builder.committee = {
            f'member_{k}': PotentialData(path, architecture='mace', species=change['species'], cutoff=4.0).store()
            for k in range(2)
        }
    frames = [bulk('Cu', 'fcc', a=3.61, cubic=True)]
    if 'md' in change:
        builder.md.parameters = orm.Dict({**MD, **change['md']})
        frames += [bulk('Cu', 'fcc', a=3.61, cubic=True), Atoms('Cu2', positions=[[0, 0, 0], [2.4, 0, 0]])]
    if change.get('single_atom'):
        frames += [bulk('Cu', 'fcc', a=3.61, cubic=True), bulk('Cu', 'fcc', a=3.61)]
    builder.structures = PESData.from_ase(frames).store()
    return builder
