"""``trainspot-evaluate`` for real, on two tiny MACE models trained with different seeds on EMT copper (not DFT).

The stored committee columns must be what ``MACECalculator`` predicts frame by frame, and the metrics what the kernel
computes from them.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.stress import voigt_6_to_full_3x3_stress

from aiida_trainspot.dataset import DatasetReader, DatasetWriter, frame_from_atoms
from aiida_trainspot.runners.evaluate import main, predict_committee
from aiida_trainspot.uncertainty.metrics import METRIC_NAMES, committee_metrics
from tests.training.conftest import TINY_MACE, copper_frames, real_mace_run, run_mace


def committee_model_files(base: Path) -> list[Path]:
    """Return two tiny MACE model files trained on the EMT copper frames with seeds 0 and 1, once per session.

    Member 0 is the training tests' run (:func:`real_mace_run`), member 1 a shorter run on fewer frames with another
    seed: the two disagree, as a committee should.
    """
    second = base / 'mace_copper_run_seed1'
    if not (second / 'finished').exists():
        frames = copper_frames(seed=1, sizes={'train': 10, 'valid': 2, 'test': 1})
        process = run_mace(second, frames, {**TINY_MACE, 'max_num_epochs': 2}, seed=1)
        assert process.returncode == 0, (second / 'mace.err').read_text()[-2000:]
        (second / 'finished').touch()
    return [real_mace_run(base) / 'mace.model', second / 'mace.model']


@pytest.fixture(scope='module')
def mace_members(tmp_path_factory) -> list[Path]:
    """Return the two tiny MACE model files of :func:`committee_model_files`."""
    return committee_model_files(tmp_path_factory.getbasetemp())


def copper_structures() -> list[Atoms]:
    """Return labelled bulk cells (periodic), a (111) slab (periodic in two directions) and a non-periodic trimer."""
    rng = np.random.default_rng(4)
    structures = []
    for repeat in ((1, 1, 2), (1, 2, 2), (2, 2, 1)):
        atoms = bulk('Cu', 'fcc', a=3.61) * repeat
        atoms.rattle(0.08, seed=int(rng.integers(1000)))
        structures.append(atoms)
    slab = fcc111('Cu', (2, 2, 2), vacuum=5.0)
    slab.info.clear()
    structures.append(slab)
    structures.append(Atoms('Cu3', positions=[[0, 0, 0], [2.5, 0, 0], [1.2, 2.1, 0.1]], cell=[10, 10, 10]))
    return structures


def write_models(folder: Path, paths: list[Path]) -> Path:
    """Write the model specs of ``paths`` and return the file."""
    specs = [{'architecture': 'mace', 'path': str(path), 'extensions': None, 'dtype': 'float64'} for path in paths]
    (folder / 'models.json').write_text(json.dumps(specs))
    return folder / 'models.json'


def run(folder: Path, models: Path, structures: list[Atoms], *options: str) -> int:
    """Write ``structures`` (with dummy labels) as ``dataset.h5`` and run the runner on it; return its status."""
    with DatasetWriter(folder / 'dataset.h5') as writer:
        for index, atoms in enumerate(structures):
            frame = frame_from_atoms(atoms)
            frame.energy, frame.forces, frame.origin = -float(index), np.full((len(atoms), 3), 0.5), f'md-{index}'
            writer.add(frame)
    arguments = ['--input', str(folder / 'dataset.h5'), '--models', str(models), '--output', str(folder / 'out.h5')]
    return main([*arguments, '--results', str(folder / 'results.json'), *options])


def direct_predictions(paths: list[Path], structures: list[Atoms]):
    """Return the energies, forces and stresses of every model on every structure through ``MACECalculator``."""
    from mace.calculators import MACECalculator

    energies, forces, stresses = [], [], []
    for path in paths:
        calculator = MACECalculator(model_paths=str(path), device='cpu', default_dtype='float64')
        energies.append([calculator.get_potential_energy(atoms.copy()) for atoms in structures])
        forces.append(np.concatenate([calculator.get_forces(atoms.copy()) for atoms in structures]))
        stresses.append(
            [
                voigt_6_to_full_3x3_stress(calculator.get_stress(atoms.copy()))
                if atoms.pbc.all()
                else np.nan * np.eye(3)
                for atoms in structures
            ]
        )
    return np.array(energies), np.array(forces), np.array(stresses)


def test_columns_equal_direct_predictions_and_metrics_the_kernel(tmp_path, mace_members):
    """Blocks of 2 frames and batches of 3: every column equals MACECalculator's prediction; labels are untouched."""
    structures = copper_structures()
    status = run(
        tmp_path, write_models(tmp_path, mace_members), structures, '--block-frames', '2', '--batch-frames', '3'
    )
    assert status == 0
    with DatasetReader(tmp_path / 'out.h5') as reader:
        batch = reader.read(0, len(reader))
    energies, forces, stresses = direct_predictions(mace_members, structures)
    np.testing.assert_allclose(batch.frame_arrays['committee_energy'], energies.T, rtol=1e-9)
    np.testing.assert_allclose(batch.atom_arrays['committee_forces'], forces.transpose(1, 0, 2), atol=1e-9)
    np.testing.assert_allclose(batch.frame_arrays['committee_stress'], stresses.transpose(1, 0, 2, 3), atol=1e-10)
    assert np.isnan(batch.frame_arrays['committee_stress'][3:]).all()  # slab and trimer: not periodic in 3D
    expected = committee_metrics(energies, forces, batch.natoms, stresses).as_columns()
    for name in METRIC_NAMES:
        np.testing.assert_allclose(batch.frame_arrays[name], expected[name], rtol=1e-9, err_msg=name)
    assert (batch.frame_arrays['force_disagreement'] > 0).all()  # different seeds disagree
    np.testing.assert_array_equal(batch.energy, -np.arange(len(structures)))
    np.testing.assert_array_equal(batch.forces, 0.5)
    assert batch.origin == [f'md-{index}' for index in range(len(structures))]

    results = json.loads((tmp_path / 'results.json').read_text())
    assert (results['num_frames'], results['num_members'], results['num_frames_with_stress']) == (5, 2, 3)
    assert results['batched_members'] == [0, 1]
    assert results['mean_force_disagreement'] == pytest.approx(expected['force_disagreement'].mean())
    assert results['mean_stress_std'] == pytest.approx(expected['stress_std'][:3].mean())
    assert results['max_force_disagreement'] == pytest.approx(expected['force_disagreement'].max())


def test_identical_members_do_not_disagree(tmp_path, mace_members):
    """A committee of the same model twice has zero disagreement on every frame."""
    status = run(tmp_path, write_models(tmp_path, [mace_members[0]] * 2), copper_structures()[:2])
    assert status == 0
    with DatasetReader(tmp_path / 'out.h5') as reader:
        batch = reader.read(0, len(reader))
    for name in METRIC_NAMES:
        np.testing.assert_allclose(batch.frame_arrays[name], 0.0, atol=1e-12, err_msg=name)


def test_unloadable_member_is_named(tmp_path, mace_members, capsys):
    """A model file that is not a model: exit status 4, and ``results.json`` names the member and the reason."""
    broken = tmp_path / 'broken.model'
    broken.write_bytes(b'not a torch file')
    assert run(tmp_path, write_models(tmp_path, [mace_members[0], broken]), copper_structures()[:1]) == 4
    error = json.loads((tmp_path / 'results.json').read_text())
    assert (error['error'], error['member']) == ('model', 1)
    assert 'broken.model' in error['reason']
    assert not (tmp_path / 'out.h5').exists()
    assert 'cannot load member 1' in capsys.readouterr().err


def test_unknown_element_fails_the_prediction(tmp_path, mace_members):
    """A frame with an element the models were not trained on: exit status 5 and no output file."""
    gold = bulk('Au', 'fcc', a=4.08)
    assert run(tmp_path, write_models(tmp_path, mace_members), [gold]) == 5
    error = json.loads((tmp_path / 'results.json').read_text())
    assert (error['error'], error['member']) == ('prediction', 0)
    assert not (tmp_path / 'out.h5').exists()


@pytest.mark.parametrize(
    ('specs', 'message'),
    [
        ([{'architecture': 'mace', 'path': 'a.model'}], 'at least two model specs'),
        ([{'architecture': 'mace', 'path': 'a.model'}, {'architecture': 'nequip', 'path': 'b'}], 'member 1'),
    ],
)
def test_bad_model_specs_exit_2(tmp_path, specs, message, capsys):
    """One member only, or a spec of an unknown architecture: exit status 2 naming the problem, before any model."""
    (tmp_path / 'models.json').write_text(json.dumps(specs))
    assert run(tmp_path, tmp_path / 'models.json', copper_structures()[:1]) == 2
    assert message in capsys.readouterr().err


def test_other_calculators_are_evaluated_frame_by_frame():
    """Members that are not MACE models (here EMT and Lennard-Jones) give their own ASE results, frame by frame."""
    structures = copper_structures()
    members = [EMT(), LennardJones(sigma=2.3, epsilon=0.4, rc=5.0)]
    predictions = predict_committee(members, structures, batch_frames=2)
    for member, calculator in enumerate([EMT(), LennardJones(sigma=2.3, epsilon=0.4, rc=5.0)]):
        offset = 0
        for frame, structure in enumerate(structures):
            atoms = structure.copy()
            atoms.calc = calculator
            assert predictions.energies[member, frame] == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
            np.testing.assert_allclose(predictions.forces[member, offset : offset + len(atoms)], atoms.get_forces())
            offset += len(atoms)
            if atoms.pbc.all():
                np.testing.assert_allclose(predictions.stresses[member, frame], atoms.get_stress(voigt=False))
            else:
                assert np.isnan(predictions.stresses[member, frame]).all()
