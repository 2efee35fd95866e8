"""The runners with metatomic models for real: a tiny PET and SOAP-BPNN trained by ``mtt`` on EMT copper (not DFT).

The PET is trained on the same frames as the tiny MACE model, so that the two make a committee. The SOAP-BPNN export
needs its TorchScript extensions (sphericart); whether a process can load it depends on what that process loaded
before, so the runs that show the folder is needed are made in a fresh process, as a CalcJob runs the runner.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from aiida_trainspot.dataset import DatasetReader, DatasetWriter, frame_from_atoms, frame_to_atoms
from aiida_trainspot.runners import evaluate, md
from aiida_trainspot.uncertainty.metrics import METRIC_NAMES, committee_metrics, frame_metrics
from tests.runners.test_evaluate import copper_structures
from tests.runners.test_md import cluster
from tests.training.conftest import real_mace_run, real_pet_run
from tests.training.test_metatrain_outputs import real_metatrain_run

pytestmark = pytest.mark.real


@pytest.fixture(scope='module')
def specs(tmp_path_factory) -> dict[str, dict]:
    """Return the model specs of the tiny MACE, PET and SOAP-BPNN (with its extensions), each trained once a session."""
    base = tmp_path_factory.getbasetemp()
    soap_bpnn = real_metatrain_run(base)
    return {
        'mace': {'architecture': 'mace', 'path': str(real_mace_run(base) / 'mace.model')},
        'pet': {'architecture': 'pet', 'path': str(real_pet_run(base) / 'model.pt')},
        'soap_bpnn': {
            'architecture': 'soap_bpnn',
            'path': str(soap_bpnn / 'model.pt'),
            'extensions': str(soap_bpnn / 'extensions'),
        },
    }


def own_calculator(spec: dict):
    """Return the model's own ASE calculator: ``MACECalculator`` or ``MetatomicCalculator``."""
    if spec['architecture'] == 'mace':
        from mace.calculators import MACECalculator

        return MACECalculator(model_paths=spec['path'], device='cpu', default_dtype='float64')
    from metatomic_ase import MetatomicCalculator

    return MetatomicCalculator(spec['path'], extensions_directory=spec.get('extensions'), device='cpu')


def own_predictions(spec: dict, structures: list[Atoms]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the energies (F,), forces (N, 3) and stresses (F, 3, 3; NaN unless periodic) of the model's calculator."""
    calculator = own_calculator(spec)
    energies, forces, stresses = [], [], []
    for structure in structures:
        atoms = structure.copy()
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        stresses.append(atoms.get_stress(voigt=False) if atoms.pbc.all() else np.full((3, 3), np.nan))
    return np.array(energies), np.concatenate(forces), np.array(stresses)


def write_inputs(folder: Path, models: list[dict], structures: list[Atoms], name: str = 'dataset.h5') -> list[str]:
    """Write ``structures`` and the model specs into ``folder``; return the runner arguments that name them."""
    with DatasetWriter(folder / name) as writer:
        writer.extend(frame_from_atoms(atoms) for atoms in structures)
    (folder / 'models.json').write_text(json.dumps(models))
    return [str(folder / name), '--models', str(folder / 'models.json'), '--results', str(folder / 'results.json')]


def evaluate_arguments(folder: Path, models: list[dict], structures: list[Atoms]) -> list[str]:
    """Return the arguments of ``trainspot-evaluate`` on ``structures`` with ``models``, output ``out.h5``."""
    return ['--input', *write_inputs(folder, models, structures), '--output', str(folder / 'out.h5')]


def read_all(path: Path):
    """Return every frame of the dataset file ``path`` as one batch."""
    with DatasetReader(path) as reader:
        return reader.read(0, len(reader))


def test_evaluate_mace_and_pet(tmp_path, specs):
    """Each member's columns are its own calculator's predictions; the metrics are the kernel's on those."""
    structures = copper_structures()  # bulk cells, a slab (periodic in 2D) and a non-periodic trimer
    arguments = evaluate_arguments(tmp_path, [specs['mace'], specs['pet']], structures)
    assert evaluate.main([*arguments, '--block-frames', '2', '--batch-frames', '2']) == 0
    batch = read_all(tmp_path / 'out.h5')
    own = [own_predictions(specs[name], structures) for name in ('mace', 'pet')]
    energies, forces, stresses = (np.stack(values) for values in zip(*own, strict=True))
    np.testing.assert_allclose(batch.frame_arrays['committee_energy'], energies.T, rtol=1e-9)
    np.testing.assert_allclose(batch.atom_arrays['committee_forces'], forces.transpose(1, 0, 2), rtol=0, atol=1e-9)
    np.testing.assert_allclose(batch.frame_arrays['committee_stress'], stresses.transpose(1, 0, 2, 3), atol=1e-10)
    assert np.isfinite(batch.frame_arrays['committee_stress'][:3]).all()  # the bulk cells
    assert np.isnan(batch.frame_arrays['committee_stress'][3:]).all()  # slab and trimer
    expected = committee_metrics(energies, forces, batch.natoms, stresses).as_columns()
    for name in METRIC_NAMES:
        np.testing.assert_allclose(batch.frame_arrays[name], expected[name], rtol=1e-9, err_msg=name)
    assert (batch.frame_arrays['force_disagreement'] > 1e-3).all(), 'two architectures disagree'
    results = json.loads((tmp_path / 'results.json').read_text())
    assert (results['num_frames'], results['num_members'], results['batched_members']) == (5, 2, [0])
    assert results['max_force_disagreement'] == pytest.approx(expected['force_disagreement'].max(), rel=1e-10)


def md_arguments(folder: Path, models: list[dict], spec: dict) -> list[str]:
    """Return the arguments of ``trainspot-md`` from the Cu4 cluster with ``models`` and the MD ``spec``."""
    (folder / 'md.json').write_text(json.dumps(spec))
    arguments = ['--structures', *write_inputs(folder, models, [cluster()], 'structures.h5')]
    return [*arguments, '--spec', str(folder / 'md.json'), '--output', str(folder / 'frames.h5')]


def test_md_with_pet_alone(tmp_path, specs):
    """NVT of a Cu4 cluster driven by the PET: every kept frame is written and the run completes."""
    spec = {'temperature': 300, 'timestep': 1.0, 'steps': 12, 'thermalisation': 4, 'stride': 2, 'seed': 5}
    arguments = md_arguments(tmp_path, [specs['pet']], spec)
    assert md.main([*arguments, '--trace', str(tmp_path / 'trace.json')]) == 0
    results = json.loads((tmp_path / 'results.json').read_text())
    assert (results['stop_reason'], results['num_runs'], results['num_steps'], results['num_frames']) == (
        'completed', 1, 12, 4
    )  # fmt: skip
    with DatasetReader(tmp_path / 'frames.h5') as reader:
        frames = list(reader.iter_frames())
    assert [frame.info['step'] for frame in frames] == [6, 8, 10, 12]
    assert all(frame.origin == 'md' and not frame.frame_arrays for frame in frames), 'one model: no committee columns'
    assert np.abs(frames[-1].positions - cluster().positions).max() > 1e-3, 'the atoms moved'
    assert [entry['uncertainty'] for entry in json.loads((tmp_path / 'trace.json').read_text())] == [None] * 6


def test_md_committee_of_mace_and_pet_stops_when_uncertain(tmp_path, specs):
    """Driven by the mean of MACE and PET, a tiny threshold stops the run at the first checked step, that frame last."""
    stop = {'threshold': 1e-6, 'every': 3}
    spec = {'temperature': 300, 'steps': 30, 'stride': 2, 'seed': 5, 'uncertainty_stop': stop}
    models = [specs['mace'], specs['pet']]
    assert md.main([*md_arguments(tmp_path, models, spec), '--trace', str(tmp_path / 'trace.json')]) == 0
    results = json.loads((tmp_path / 'results.json').read_text())
    assert results['stop_reason'].startswith('uncertain: ')
    assert results['stop_reason'].endswith('> 1e-06 at step 3 of run 0')
    assert (results['num_steps'], results['num_frames']) == (3, 2)
    (checked,) = json.loads((tmp_path / 'trace.json').read_text())
    with DatasetReader(tmp_path / 'frames.h5') as reader:
        frames = list(reader.iter_frames())
    assert [frame.info['step'] for frame in frames] == [2, 3]
    assert 'uncertainty_stop' not in frames[0].info and frames[-1].info['uncertainty_stop'] is True

    last = frames[-1]
    own = [own_predictions(specs[name], [frame_to_atoms(last)]) for name in ('mace', 'pet')]
    energies, forces = np.array([values[0][0] for values in own]), np.stack([values[1] for values in own])
    np.testing.assert_allclose(last.frame_arrays['committee_energy'], energies, rtol=1e-10)
    np.testing.assert_allclose(last.atom_arrays['committee_forces'], forces.transpose(1, 0, 2), rtol=0, atol=1e-10)
    metrics = frame_metrics(energies, forces)
    assert last.frame_arrays['force_disagreement'] == pytest.approx(metrics['force_disagreement'], rel=1e-10)
    assert checked['uncertainty'] == pytest.approx(metrics['force_disagreement'], rel=1e-10)
    assert metrics['force_disagreement'] > stop['threshold']


def run_evaluate_script(folder: Path, models: list[dict], structures: list[Atoms]) -> subprocess.CompletedProcess:
    """Run ``trainspot-evaluate`` in a fresh process, as a CalcJob does: no TorchScript extension is loaded before."""
    return subprocess.run(
        [shutil.which('trainspot-evaluate'), *evaluate_arguments(folder, models, structures)],
        capture_output=True,
        text=True,
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
        check=False,
    )


def finite_difference_forces(spec: dict, atoms: Atoms, step: float = 1e-4) -> np.ndarray:
    """Return minus the central finite differences of the model's energy: the forces, whatever its autograd does."""
    calculator = own_calculator(spec)
    forces = np.zeros((len(atoms), 3))
    for atom, axis in np.ndindex(forces.shape):
        energies = []
        for sign in (1, -1):
            displaced = atoms.copy()
            displaced.positions[atom, axis] += sign * step
            displaced.calc = calculator
            energies.append(displaced.get_potential_energy())
        forces[atom, axis] = (energies[1] - energies[0]) / (2 * step)
    return forces


def test_soap_bpnn_is_loaded_with_its_extensions_folder(tmp_path, specs):
    """In a fresh process, the SOAP-BPNN loads from the spec's ``extensions``; its forces are minus its energy gradient.

    The bare sphericart library of the folder has no autograd for its spherical harmonics: without the runner's
    import of ``sphericart.torch`` the forces were off by ~2%, silently (the energies were right).
    """
    assert any(Path(specs['soap_bpnn']['extensions']).iterdir()), 'the export has TorchScript extensions'
    atoms = copper_structures()[0]  # a rattled 2-atom cell
    process = run_evaluate_script(tmp_path, [specs['pet'], specs['soap_bpnn']], [atoms])
    assert process.returncode == 0, process.stderr[-2000:]
    assert 'autograd kernel was not registered' not in process.stderr
    batch = read_all(tmp_path / 'out.h5')
    energy = own_calculator(specs['soap_bpnn']).get_potential_energy(atoms.copy())
    assert batch.frame_arrays['committee_energy'][0, 1] == pytest.approx(energy, rel=1e-10)
    expected = finite_difference_forces(specs['soap_bpnn'], atoms)
    assert np.abs(expected).max() > 1e-2, 'the rattled atoms feel forces'
    np.testing.assert_allclose(batch.atom_arrays['committee_forces'][:, 1], expected, rtol=0, atol=1e-6)


def test_missing_extensions_folder_names_the_member(tmp_path, specs, capsys):
    """A spec naming an ``extensions`` folder that is not there: both runners name the member and the folder."""
    soap_bpnn = {**specs['soap_bpnn'], 'extensions': str(tmp_path / 'no_such_extensions')}
    arguments = evaluate_arguments(tmp_path, [specs['pet'], soap_bpnn], copper_structures()[:1])
    assert evaluate.main(arguments) == evaluate.EXIT_MODEL_LOAD_FAILED
    error = json.loads((tmp_path / 'results.json').read_text())
    assert (error['error'], error['member']) == ('model', 1)
    assert f"the `extensions` folder '{soap_bpnn['extensions']}' of the model is not there" in error['reason']

    capsys.readouterr()
    assert md.main(md_arguments(tmp_path, [specs['mace'], soap_bpnn], {'steps': 2, 'stride': 1})) == 2
    message = capsys.readouterr().err
    assert f'cannot load member 1 ({soap_bpnn["path"]}): FileNotFoundError' in message
    assert 'no_such_extensions' in message
