import numpy as np
import pytest
from aiida.common.links import LinkType
from aiida.orm import Dict, Int, Str
from ase.build import bulk, molecule

from aiida_trainspot.calculations.functions.uncertainty import calibrate_committee, select_frames
from aiida_trainspot.data import PESData
from aiida_trainspot.dataset import Frame
from aiida_trainspot.uncertainty.metrics import frame_metrics

pytestmark = pytest.mark.aiida

MEMBER_SPREAD = np.array([1.0, -1.0, 1.0, -1.0])
"""Member deviations from the committee mean: mean 0, population std 1."""
SLOPE = 2.0
"""The committee mean is off the label by SLOPE times the disagreement, for every property."""


def frame_of(atoms, **kwargs):
    return Frame(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=atoms.pbc, **kwargs)


def with_committee(frame, scale):
    """Give ``frame`` committee predictions whose mean error is exactly SLOPE × the disagreement, ``scale`` sized."""
    rng = np.random.default_rng(frame.natoms)
    natoms = frame.natoms
    pattern = rng.normal(size=(natoms, 3))
    energies = frame.energy + scale * natoms * (SLOPE + MEMBER_SPREAD)
    forces = frame.forces + scale * (SLOPE + MEMBER_SPREAD)[:, None, None] * pattern
    frame.frame_arrays = {'committee_energy': energies}
    frame.atom_arrays = {'committee_forces': forces.transpose(1, 0, 2)}
    stresses = None
    if frame.stress is not None:
        stresses = frame.stress + scale * (SLOPE + MEMBER_SPREAD)[:, None, None] * np.diag([1.0, 2.0, 3.0])
        frame.frame_arrays['committee_stress'] = stresses
    metrics = frame_metrics(energies, forces, stresses)
    frame.frame_arrays.update({name: np.array(value) for name, value in metrics.items() if np.isfinite(value)})
    return frame


def labelled_copper(index):
    atoms = bulk('Cu', 'fcc', a=3.6, cubic=True)
    atoms.rattle(0.02, seed=index)
    rng = np.random.default_rng(index)
    return frame_of(atoms, energy=-14.0, forces=rng.normal(size=(4, 3)), stress=np.eye(3) * 1e-3, info={'index': index})


@pytest.fixture
def calibration_set(aiida_profile):
    """Ten labelled copper frames with committee scale 0.01 … 0.10, a molecule, an unlabelled and a bare frame."""
    frames = [with_committee(labelled_copper(index), 0.01 * (index + 1)) for index in range(10)]
    water = molecule('H2O')
    frames.append(with_committee(frame_of(water, energy=-3.0, forces=np.zeros((3, 3))), 0.2))
    unlabelled = with_committee(labelled_copper(11), 5.0)
    unlabelled.energy = unlabelled.forces = unlabelled.stress = None
    frames.append(unlabelled)
    frames.append(labelled_copper(12))
    return PESData.from_frames(frames).store()


def test_calibration_recovers_the_slope_and_scores_the_thresholds(calibration_set):
    tolerances = {'energy': 0.091, 'forces': 0.05, 'stress': 1.0}
    result = calibrate_committee(calibration_set, Dict(tolerances))
    assert result.is_stored
    calibration = result.get_dict()
    for name in ('energy', 'forces', 'stress'):
        assert calibration[name]['slope'] == pytest.approx(SLOPE)
        assert calibration[name]['r2'] == pytest.approx(1.0)
        assert calibration['thresholds'][name] == pytest.approx(tolerances[name] / SLOPE)
    assert calibration['energy']['num_frames'] == 11
    assert calibration['stress']['num_frames'] == 10
    assert calibration['forces']['disagreement'] == 'force_disagreement'
    energy_scores = calibration['energy']['scores']
    # per-atom energy errors are 2 × scale: copper frames 5 … 10 (0.10 … 0.20) and water (0.4) exceed 0.091
    assert energy_scores == {
        'true_positives': 7,
        'false_positives': 0,
        'false_negatives': 0,
        'true_negatives': 4,
        'tpr': 1.0,
        'ppv': 1.0,
    }
    assert calibration['stress']['scores']['tpr'] is None
    creator = result.base.links.get_incoming(link_type=LinkType.CREATE).one().node
    assert creator.process_type.endswith('calibrate_committee')


def test_calibration_without_stress_reports_no_threshold(aiida_profile):
    frames = [
        with_committee(frame_of(molecule('H2O'), energy=-3.0, forces=np.zeros((3, 3))), scale) for scale in (0.1, 0.2)
    ]
    calibration = calibrate_committee(PESData.from_frames(frames)).get_dict()
    assert calibration['thresholds']['stress'] is None
    assert calibration['stress']['scores'] is None and calibration['stress']['num_frames'] == 0
    assert calibration['energy']['tolerance'] == 0.002


@pytest.mark.parametrize(
    ('tolerances', 'message'),
    [({'forces': -1.0}, '`tolerances`: the tolerance of `forces`'), ({'virial': 1.0}, 'unknown properties')],
)
def test_calibration_rejects_bad_tolerances(calibration_set, tolerances, message):
    with pytest.raises(ValueError, match=message):
        calibrate_committee(calibration_set, Dict(tolerances))


def test_calibration_needs_committee_columns(aiida_profile):
    with pytest.raises(ValueError, match='no committee columns'):
        calibrate_committee(PESData.from_frames([labelled_copper(0)]))


def exploration_frame(atoms, index, force_disagreement, energy_disagreement=0.0):
    frame = frame_of(atoms, info={'index': index})
    frame.frame_arrays = {
        'force_disagreement': np.array(force_disagreement),
        'energy_std_per_atom': np.array(energy_disagreement),
    }
    return frame


@pytest.fixture
def exploration_set(aiida_profile):
    """Frames 0-19: copper, 4 of them certain; 20-22: distinct structures; 23: labelled and uncertain."""
    frames = []
    for index in range(20):
        atoms = bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 1, 1)
        atoms.rattle(0.005, seed=index)
        frames.append(exploration_frame(atoms, index, 0.05 if index % 5 == 0 else 0.3))
    compressed = bulk('Cu', 'fcc', a=3.2, cubic=True) * (2, 1, 1)
    alloy = bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 1, 1)
    alloy.numbers[:4] = 79
    cluster = bulk('Cu', 'fcc', a=3.6, cubic=True)
    cluster.pbc = False
    frames += [exploration_frame(atoms, 20 + k, 0.3) for k, atoms in enumerate((compressed, alloy, cluster))]
    labelled = exploration_frame(bulk('Cu', 'fcc', a=3.6, cubic=True), 23, 0.0, energy_disagreement=1.0)
    labelled.energy, labelled.forces = -14.0, np.zeros((4, 3))
    frames.append(labelled)
    return PESData.from_frames(frames).store()


def selected(node):
    return [frame.info['index'] for frame in node.iter_frames()]


def test_selection_takes_unlabelled_frames_above_any_threshold(exploration_set):
    everything = select_frames(exploration_set, Dict({'forces': 0.1, 'energy': 0.5}), Int(1000), Int(0))
    assert selected(everything) == [index for index in range(23) if index % 5 or index >= 20]
    assert everything.iter_frames().__next__().frame_arrays['force_disagreement'] == 0.3
    energy_only = select_frames(exploration_set, Dict({'forces': None, 'energy': 0.5}), Int(1000), Int(0))
    assert len(energy_only) == 0


def test_random_cap_is_seeded(exploration_set):
    thresholds = Dict({'forces': 0.1})
    first = selected(select_frames(exploration_set, thresholds, Int(5), Int(1)))
    assert len(first) == 5 and first == sorted(first)
    assert first == selected(select_frames(exploration_set, thresholds, Int(5), Int(1)))
    assert first != selected(select_frames(exploration_set, thresholds, Int(5), Int(2)))


def test_diverse_cap_picks_the_distinct_structures(exploration_set):
    for seed in range(2):
        picked = selected(select_frames(exploration_set, Dict({'forces': 0.1}), Int(4), Int(seed), Str('diverse')))
        assert len(picked) == 4 and {20, 21, 22} <= set(picked)


def test_selection_accepts_a_calibration_node(calibration_set):
    calibration = calibrate_committee(calibration_set, Dict({'energy': 0.091, 'forces': 0.05, 'stress': 1.0}))
    chosen = select_frames(calibration_set, calibration, Int(10), Int(0))
    assert selected(chosen) == [11]
    creator = chosen.base.links.get_incoming(link_type=LinkType.CREATE).one().node
    inputs = {link.link_label for link in creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC)}
    assert {'dataset', 'thresholds', 'max_frames', 'seed'} <= inputs


@pytest.mark.parametrize(
    ('thresholds', 'kwargs', 'message'),
    [
        ({'virial': 1.0}, {}, 'unknown properties'),
        ({'forces': None}, {}, 'no property has a threshold'),
        ({'forces': -0.1}, {}, 'non-negative number'),
        ({'forces': 0.1}, {'method': 'greedy'}, '`method`: unknown selection method'),
    ],
)
def test_selection_rejects_bad_input(exploration_set, thresholds, kwargs, message):
    nodes = {name: Str(value) for name, value in kwargs.items()}
    with pytest.raises(ValueError, match=message):
        select_frames(exploration_set, Dict(thresholds), Int(5), Int(0), **nodes)


def test_selection_needs_committee_columns(aiida_profile):
    with pytest.raises(ValueError, match=r"no committee columns \['force_disagreement'\]"):
        select_frames(PESData.from_frames([labelled_copper(0)]), Dict({'forces': 0.1}), Int(5), Int(0))
    no_stress = select_frames(
        PESData.from_frames([exploration_frame(molecule('H2O'), 0, 9.0)]), Dict({'stress': 0.1}), Int(5), Int(0)
    )
    assert len(no_stress) == 0
