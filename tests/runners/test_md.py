"""``trainspot-md`` for real, with a tiny MACE model trained once on EMT copper (not DFT) and copies of it."""

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111

from aiida_trainspot.dataset import DatasetReader, DatasetWriter, frame_from_atoms
from aiida_trainspot.runners.md import MdResults, main, run_md
from aiida_trainspot.runners.md_spec import md_spec_error, validate_md_spec
from aiida_trainspot.runners.models import CommitteeCalculator, load_calculator
from aiida_trainspot.uncertainty.threshold import MovingAverageThreshold
from tests.training.conftest import real_mace_run


@pytest.fixture(scope='module')
def model_path(tmp_path_factory) -> Path:
    """Return the file of a tiny MACE model trained on EMT copper (once per session, shared with the training tests)."""
    return real_mace_run(tmp_path_factory.getbasetemp()) / 'mace.model'


def mace(path: Path, scale: float = 1.0, noise: float = 0.0, seed: int = 0):
    """Return a ``MACECalculator`` of ``path`` whose weights are multiplied by ``scale`` and then jittered."""
    import torch

    calculator = load_calculator({'architecture': 'mace', 'path': str(path)})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in calculator.models[0].parameters():
            parameter.mul_(scale).add_(noise * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return calculator


def cluster() -> Atoms:
    """Return a non-periodic Cu4 cluster."""
    return Atoms('Cu4', positions=[[0, 0, 0], [2.5, 0, 0], [1.25, 2.1, 0], [1.25, 0.7, 2.05]], cell=[12, 12, 12])


def test_nvt_of_a_molecule(model_path, tmp_path):
    """The temperature of a Cu4 cluster averages near the target, the atoms move and frames are kept every stride."""
    with DatasetWriter(tmp_path / 'structures.h5') as writer:
        writer.add(frame_from_atoms(cluster()))
    spec = {'temperature': 300, 'timestep': 2.0, 'steps': 100, 'thermalisation': 40, 'stride': 5, 'friction': 0.1}
    models = [{'architecture': 'mace', 'path': str(model_path)}] * 2
    (tmp_path / 'md.json').write_text(json.dumps({**spec, 'iteration': 3}))
    (tmp_path / 'models.json').write_text(json.dumps(models))
    files = {name: str(tmp_path / f'{name}.{ext}') for name, ext in (('output', 'h5'), ('trace', 'json'))}
    arguments = ['--structures', str(tmp_path / 'structures.h5'), '--spec', str(tmp_path / 'md.json')]
    arguments += ['--models', str(tmp_path / 'models.json'), '--results', str(tmp_path / 'results.json')]
    assert main([*arguments, '--output', files['output'], '--trace', files['trace']]) == 0

    results = json.loads((tmp_path / 'results.json').read_text())
    assert (results['stop_reason'], results['num_frames'], results['num_steps']) == ('completed', 12, 100)
    trace = json.loads(Path(files['trace']).read_text())
    assert [entry['step'] for entry in trace] == list(range(5, 101, 5))
    temperatures = [entry['temperature'] for entry in trace]
    assert 100 < np.mean(temperatures) < 600 and np.std(temperatures) > 10
    assert all(entry['uncertainty'] == 0 for entry in trace)  # two identical members agree
    with DatasetReader(files['output']) as reader:
        frames = list(reader.iter_frames())
    assert [frame.info['step'] for frame in frames] == list(range(45, 101, 5))
    assert {(frame.origin, frame.iteration) for frame in frames} == {('md', 3)}
    assert frames[0].energy is None and 'committee_stress' not in frames[0].frame_arrays
    assert frames[0].atom_arrays['committee_forces'].shape == (4, 2, 3)
    assert np.abs(frames[-1].positions - cluster().positions).max() > 0.05


def test_npt_of_bulk_changes_the_volume(model_path):
    """Under 20 GPa a copper cell shrinks and keeps its angles."""
    atoms = bulk('Cu', 'fcc', a=3.61, cubic=True)
    volume = atoms.get_volume()
    spec = validate_md_spec(
        {'ensemble': 'npt', 'pressure': 20.0, 'steps': 40, 'stride': 10, 'timestep': 2.0, 'taup': 100.0}, 1
    )
    frames = run_md(atoms, spec, CommitteeCalculator([mace(model_path)]), 0, MdResults())
    assert len(frames) == 4
    assert atoms.get_volume() < 0.99 * volume
    assert np.allclose(atoms.cell.angles(), 90)


def test_npt_of_a_slab_keeps_its_out_of_plane_length(model_path):
    """The barostat scales only the periodic in-plane vectors of a (111) slab."""
    atoms = fcc111('Cu', (2, 2, 2), vacuum=5.0)
    cell = atoms.cell.array.copy()
    spec = validate_md_spec(
        {'ensemble': 'npt', 'pressure': 20.0, 'steps': 30, 'stride': 10, 'timestep': 2.0, 'taup': 100.0}, 1, [atoms.pbc]
    )
    run_md(atoms, spec, CommitteeCalculator([mace(model_path)]), 0, MdResults())
    assert np.array_equal(atoms.cell.array[2], cell[2])
    assert not np.allclose(atoms.cell.array[:2], cell[:2], rtol=1e-3)


def test_guard_stops_a_broken_model(model_path):
    """A model whose weights are scaled by 1e3 gives huge forces: the guard stops the run at once and says why."""
    results = MdResults()
    spec = validate_md_spec({'steps': 50, 'stride': 1, 'max_force': 50.0}, 1)
    frames = run_md(cluster(), spec, CommitteeCalculator([mace(model_path, scale=1e3)]), 0, results)
    assert results.stop_reason.startswith('unstable: ')
    assert 'max_force' in results.stop_reason or 'NaN' in results.stop_reason
    assert results.num_steps < 50 and len(frames) < 50


def free_committee_run(model_path) -> tuple[list, dict, np.ndarray]:
    """Return a disagreeing committee of 2, an MD spec checking every step and the disagreements of its free run."""
    members = [mace(model_path), mace(model_path, noise=2e-3, seed=1)]
    free = MdResults()
    base = {'temperature': 600, 'steps': 40, 'stride': 1, 'timestep': 2.0, 'seed': 7}
    run_md(cluster(), validate_md_spec(base, 2), CommitteeCalculator(members), 0, free)
    return members, base, np.array([entry['uncertainty'] for entry in free.trace])


def test_uncertainty_stop_returns_the_first_frame_above_the_threshold(model_path):
    """With a threshold between the disagreements of a free run, the same run stops at the first step above it."""
    members, base, uncertainties = free_committee_run(model_path)
    threshold = float(np.quantile(uncertainties, 0.7))
    first = int(np.argmax(uncertainties > threshold))

    stopped = MdResults()
    spec = validate_md_spec({**base, 'uncertainty_stop': {'threshold': threshold, 'every': 1}}, 2)
    frames = run_md(cluster(), spec, CommitteeCalculator(members), 0, stopped)
    reason = f'uncertain: {uncertainties[first]:.6g} > {threshold:.6g} at step {first + 1}'
    assert stopped.stop_reason.startswith(reason)
    assert frames[-1].info['uncertainty_stop'] and frames[-1].info['step'] == first + 1
    assert frames[-1].frame_arrays['force_disagreement'] == pytest.approx(uncertainties[first])
    assert all(entry['uncertainty'] <= threshold for entry in stopped.trace[:-1])


def test_moving_average_stop_updates_the_threshold_at_every_check(model_path):
    """From a threshold still in its warm-up, the run crosses Eq. 2 at the first check a numpy reference says."""
    members, base, uncertainties = free_committee_run(model_path)
    start = [0.5 * float(uncertainties.mean())] * 3  # three earlier checks: the run's own checks end the warm-up
    references = np.array(
        [(1 - 0.1) * np.mean([*start, *uncertainties[: index + 1]][-6:]) for index in range(len(uncertainties))]
    )
    crossing = (uncertainties > references) & (np.arange(len(uncertainties)) >= 1)  # active from the 5th value on
    first = int(np.argmax(crossing))
    assert crossing.any(), 'the free run must cross the reference threshold for this test to tell'

    state = MovingAverageThreshold(window=6, c_x=-0.1, warmup=4)
    for value in start:
        state.update(value)
    stop = {'moving_average': state.state(), 'training_set_size': 0, 'every': 1}
    stopped = MdResults()
    spec = validate_md_spec({**base, 'uncertainty_stop': stop}, 2)
    frames = run_md(cluster(), spec, CommitteeCalculator(members), 0, stopped)
    assert frames[-1].info['uncertainty_stop'] and frames[-1].info['step'] == first + 1
    thresholds = [entry['threshold'] for entry in stopped.trace]
    assert thresholds[0] is None, 'four values: still in the warm-up'
    np.testing.assert_allclose(thresholds[1:], references[1 : first + 1])


LIVE_STOP = {'moving_average': MovingAverageThreshold().state(), 'training_set_size': 0, 'every': 1}


@pytest.mark.parametrize(
    ('spec', 'num_models', 'pbcs', 'field'),
    [
        ({'ensemble': 'nve'}, None, None, '`ensemble`'),
        ({'temperature': -10}, None, None, '`temperature`'),
        ({'timestep': 0}, None, None, '`timestep`'),
        ({'steps': 10, 'thermalisation': 10}, None, None, '`thermalisation`'),
        ({'pressure': 1.0}, None, None, '`pressure`'),
        ({'ensemble': 'npt'}, 1, [[False, False, False]], '`pressure`/`npt`'),
        ({'drive': 2}, 2, None, '`drive`'),
        ({'uncertainty_stop': {'threshold': 0.1, 'every': 1}}, 1, None, '`uncertainty_stop`'),
        ({'uncertainty_stop': {'threshold': -1, 'every': 1}}, 2, None, '`uncertainty_stop.threshold`'),
        ({'uncertainty_stop': {'moving_average': {}, 'training_set_size': 0, 'every': 1}}, 2, None, 'moving_average'),
        ({'uncertainty_stop': {**LIVE_STOP, 'training_set_size': -1}}, 2, None, '`uncertainty_stop.training_set_size`'),
        ({'uncertainty_stop': {'threshold': 0.1}}, 2, None, '`uncertainty_stop` must be null'),
        ({'tempreature': 300}, None, None, 'tempreature'),
    ],
)
def test_bad_spec_is_rejected_naming_the_field(spec, num_models, pbcs, field):
    """Every bad field gets a message that names it."""
    assert field in md_spec_error(spec, num_models, pbcs)


def test_bad_spec_file_exits_2(tmp_path, capsys):
    """The runner rejects a bad spec before loading any model, naming the file and the field."""
    with DatasetWriter(tmp_path / 'structures.h5') as writer:
        writer.add(frame_from_atoms(cluster()))
    (tmp_path / 'md.json').write_text(json.dumps({'timestep': -1}))
    (tmp_path / 'models.json').write_text(json.dumps([{'architecture': 'mace', 'path': 'missing.model'}]))
    arguments = ['--structures', str(tmp_path / 'structures.h5'), '--spec', str(tmp_path / 'md.json')]
    assert main([*arguments, '--models', str(tmp_path / 'models.json')]) == 2
    assert '`timestep` must be a positive number' in capsys.readouterr().err
