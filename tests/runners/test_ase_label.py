"""``trainspot-ase-label`` for real: its labels are those of the calculators themselves, and they obey the physics.

EMT, Lennard-Jones and Morse run in-process through ``main``; LAMMPS is Debian's ``lmp`` with Tersoff's carbon.
"""

import json
import shutil
import subprocess

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, graphene
from ase.calculators.emt import EMT
from ase.calculators.lammpsrun import LAMMPS
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential

from aiida_trainspot.dataset import DatasetReader, DatasetWriter, Frame, frame_from_atoms
from aiida_trainspot.runners.ase_label import main

TERSOFF_FILE = '/usr/share/lammps/potentials/SiC.tersoff'
TERSOFF = {
    'name': 'lammps',
    'parameters': {'pair_style': 'tersoff', 'pair_coeff': ['* * SiC.tersoff C'], 'potential_files': [TERSOFF_FILE]},
}
TERSOFF_DIAMOND_COHESIVE_ENERGY = -7.37  # eV/atom, Tersoff PRB 37, 6991 (1988); the C entry of SiC.tersoff


def copper_structures() -> list[Atoms]:
    """Return a primitive cell, a rattled cubic cell, a (111) slab (periodic in two directions) and a dimer."""
    rattled = bulk('Cu', 'fcc', a=3.61 * 1.01, cubic=True)
    rattled.rattle(0.05, seed=1)
    slab = fcc111('Cu', (2, 2, 3), vacuum=6.0)
    slab.info.clear()
    return [bulk('Cu', 'fcc', a=3.61), rattled, slab, Atoms('Cu2', positions=[[0, 0, 0], [0.3, 0.2, 2.4]])]


def frame_to_structure(frame: Frame) -> Atoms:
    return Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)


def label(tmp_path, structures, spec, block_frames=2, **frame_fields):
    """Write ``structures`` as a dataset, run the runner with ``spec`` and return its frames and results."""
    with DatasetWriter(tmp_path / 'dataset.h5') as writer:
        for index, atoms in enumerate(structures):
            frame = frame_from_atoms(atoms)
            for name, values in frame_fields.items():
                setattr(frame, name, values[index])
            writer.add(frame)
    (tmp_path / 'calculator.json').write_text(json.dumps(spec))
    status = main(
        [
            *('--input', str(tmp_path / 'dataset.h5'), '--calculator', str(tmp_path / 'calculator.json')),
            *('--output', str(tmp_path / 'labelled.h5'), '--results', str(tmp_path / 'results.json')),
            *('--block-frames', str(block_frames)),
        ]
    )
    assert status == 0
    with DatasetReader(tmp_path / 'labelled.h5') as reader:
        frames = list(reader.iter_frames())
    return frames, json.loads((tmp_path / 'results.json').read_text())


def assert_labels_of(calculator, atoms: Atoms, frame: Frame) -> None:
    """Assert that ``frame`` holds what ``calculator`` gives for ``atoms`` directly, stress only if fully periodic."""
    atoms = atoms.copy()
    atoms.calc = calculator
    assert frame.failure_reason == ''
    assert frame.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(frame.forces, atoms.get_forces(), rtol=1e-10, atol=1e-12)
    if atoms.pbc.all():
        np.testing.assert_allclose(frame.stress, atoms.get_stress(voigt=False), rtol=1e-10, atol=1e-14)
    else:
        assert frame.stress is None, 'a frame that is not periodic in three directions has no stress'


@pytest.mark.kernel
def test_emt_labels_are_emt_and_metadata_is_kept(tmp_path):
    structures = copper_structures()
    origins, splits = ['input', 'rattle', 'slab', 'cluster'], ['train', 'valid', 'test', '']
    info = [{'tag': index} for index in range(4)]
    frames, results = label(tmp_path, structures, {'name': 'emt'}, origin=origins, split=splits, info=info)
    assert [frame.natoms for frame in frames] == [len(atoms) for atoms in structures]
    for atoms, frame in zip(structures, frames, strict=True):
        assert_labels_of(EMT(), atoms, frame)
        np.testing.assert_allclose(frame.forces.sum(axis=0), 0.0, atol=1e-10)  # Newton's third law
        np.testing.assert_array_equal(frame.positions, atoms.positions)
    assert [frame.origin for frame in frames] == origins
    assert [frame.split for frame in frames] == splits
    assert [frame.info for frame in frames] == info
    assert results['calculator'] == 'emt'
    assert (results['num_frames'], results['num_labelled'], results['num_failed']) == (4, 4, 0)
    assert results['failures'] == []


@pytest.mark.kernel
def test_lennard_jones_labels_and_dimer_minimum(carbon_frames, tmp_path):
    parameters = {'sigma': 1.2, 'epsilon': 0.3, 'rc': 12.0}
    r_min = 2 ** (1 / 6) * parameters['sigma']
    dimer = Atoms('C2', positions=[[0, 0, 0], [0, 0, r_min]])
    structures = [*(frame_to_structure(frame) for frame in carbon_frames), dimer]
    frames, _ = label(tmp_path, structures, {'name': 'lennard_jones', 'parameters': parameters})
    for atoms, frame in zip(structures, frames, strict=True):
        assert_labels_of(LennardJones(**parameters), atoms, frame)
        np.testing.assert_allclose(frame.forces.sum(axis=0), 0.0, atol=1e-10)
    assert [frame.stress is not None for frame in frames] == [True, True, False, False], 'graphene is 2D'
    assert frames[-1].energy == pytest.approx(-parameters['epsilon'], abs=1e-5), 'the well depth at 2^(1/6) σ'
    np.testing.assert_allclose(frames[-1].forces, 0.0, atol=1e-5)


@pytest.mark.kernel
def test_morse_labels_and_dimer_minimum(tmp_path):
    parameters = {'epsilon': 0.34, 'r0': 2.55, 'rho0': 4.0}
    dimer = Atoms('Cu2', positions=[[0, 0, 0], [parameters['r0'], 0, 0]])
    structures = [*copper_structures(), dimer]
    frames, _ = label(tmp_path, structures, {'name': 'morse', 'parameters': parameters})
    for atoms, frame in zip(structures, frames, strict=True):
        assert_labels_of(MorsePotential(**parameters), atoms, frame)
    assert frames[-1].energy == pytest.approx(-parameters['epsilon'], rel=1e-12)
    np.testing.assert_allclose(frames[-1].forces, 0.0, atol=1e-12)


@pytest.mark.kernel
def test_failing_frames_keep_their_reason(tmp_path):
    overlapping = bulk('Cu', 'fcc', a=3.61) * (2, 1, 1)
    overlapping.positions[1] = overlapping.positions[0]
    silicon = bulk('Si', 'diamond', a=5.43)
    structures = [*copper_structures()[:2], silicon, overlapping]
    previous = [1.0, 2.0, 3.0, 4.0]  # labels from an earlier calculation: a failed frame must not keep them
    frames, results = label(tmp_path, structures, {'name': 'emt'}, energy=previous)
    assert [frame.labelled for frame in frames] == [True, True, False, False]
    for frame in frames[2:]:
        assert (frame.energy, frame.forces, frame.stress) == (None, None, None)
    assert frames[2].failure_reason == 'NotImplementedError: No EMT-potential for Si'
    assert 'NaN or infinite' in frames[3].failure_reason
    assert_labels_of(EMT(), structures[0], frames[0])
    assert (results['num_frames'], results['num_labelled'], results['num_failed']) == (4, 2, 2)
    assert results['failures'] == [
        {'frame': 2, 'reason': frames[2].failure_reason},
        {'frame': 3, 'reason': frames[3].failure_reason},
    ]


@pytest.mark.real
def test_lammps_tersoff_carbon(tmp_path):
    """Diamond's cohesive energy, stress as the strain derivative of the energy, 0D and 2D frames, failures.

    The molecule comes first: a boundary kept from the first frame (as ASE's calculator does) breaks the crystals.
    """
    a0, strain = 3.566, 1e-4
    rattled = bulk('C', 'diamond', a=a0 * 0.98, cubic=True)
    rattled.rattle(0.05, seed=3)
    chain = Atoms('C3', positions=[[-1.3, 0, 0], [0, 0, 0], [1.3, 0.1, 0]])
    chain_in_box = chain.copy()
    chain_in_box.cell, chain_in_box.pbc = np.eye(3) * 20, True
    chain_in_box.center()
    sheet_periodic = graphene(vacuum=6.0)
    sheet_periodic.pbc = True
    overlapping = bulk('C', 'diamond', a=a0)
    overlapping.positions[1] = overlapping.positions[0]
    structures = {
        'chain': chain,
        'sheet': graphene(vacuum=6.0),
        'atom': Atoms('C', positions=[[0, 0, 0]]),
        'compressed': bulk('C', 'diamond', a=a0 * (1 - strain)),
        'diamond': bulk('C', 'diamond', a=a0),
        'stretched': bulk('C', 'diamond', a=a0 * (1 + strain)),
        'rattled': rattled,
        'chain_in_box': chain_in_box,
        'sheet_periodic': sheet_periodic,
        'silicon': bulk('Si', 'diamond', a=5.43),
        'overlapping': overlapping,
        'diamond_again': bulk('C', 'diamond', a=a0),
    }
    labelled, results = label(tmp_path, list(structures.values()), TERSOFF, block_frames=5)
    frames = dict(zip(structures, labelled, strict=True))

    diamond = frames['diamond']
    assert diamond.energy / 2 == pytest.approx(TERSOFF_DIAMOND_COHESIVE_ENERGY, abs=0.05)
    volume = structures['diamond'].get_volume()
    derivative = (frames['stretched'].energy - frames['compressed'].energy) / (2 * strain * volume)  # tr(σ) V = dE/dε
    assert np.trace(diamond.stress) == pytest.approx(derivative, rel=1e-3, abs=1e-6)
    assert np.all(np.diag(frames['rattled'].stress) < 0), 'a compressed crystal has a negative stress (ASE sign)'
    np.testing.assert_allclose(frames['rattled'].forces.sum(axis=0), 0.0, atol=1e-10)
    reference = LAMMPS(pair_style='tersoff', pair_coeff=[f'* * {TERSOFF_FILE} C'], specorder=['C'], keep_alive=False)
    reference.set(command=shutil.which('lmp'))
    try:
        assert_labels_of(reference, rattled, frames['rattled'])
    finally:
        reference.clean()

    assert frames['chain'].stress is None and frames['sheet'].stress is None
    assert frames['chain'].energy == pytest.approx(frames['chain_in_box'].energy, abs=1e-9), 'as in a big box'
    np.testing.assert_allclose(frames['chain'].forces, frames['chain_in_box'].forces, atol=1e-8)
    assert frames['sheet'].energy == pytest.approx(frames['sheet_periodic'].energy, abs=1e-9), 'z periodic or not'
    assert frames['atom'].energy == pytest.approx(0.0, abs=1e-12), 'an isolated Tersoff atom has no energy'

    expected = "ValueError: the LAMMPS potential has no atom type for ['Si']: `specorder` is ['C']"
    assert frames['silicon'].failure_reason == expected
    assert not frames['overlapping'].labelled and frames['overlapping'].failure_reason
    assert frames['diamond_again'].energy == diamond.energy, 'a failed frame leaves nothing behind for the next'
    assert (results['num_labelled'], results['num_failed']) == (10, 2)


@pytest.mark.real
def test_console_script_exit_statuses(tmp_path):
    script = shutil.which('trainspot-ase-label')
    assert script is not None, 'run `pip install -e .`: the console script is missing'
    with DatasetWriter(tmp_path / 'dataset.h5') as writer:
        writer.add(frame_from_atoms(bulk('Cu', 'fcc', a=3.61)))

    def run(spec, dataset='dataset.h5', output='labelled.h5'):
        (tmp_path / 'calculator.json').write_text(json.dumps(spec))
        arguments = ['--input', dataset, '--calculator', 'calculator.json', '--output', output]
        return subprocess.run([script, *arguments], cwd=tmp_path, capture_output=True, text=True, check=False)

    done = run({'name': 'emt'})
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / 'results.json').read_text())['num_labelled'] == 1
    (tmp_path / 'labelled.h5').unlink()

    bad_spec = run({'name': 'lennard_jones', 'parameters': {'sigma': 0}})
    assert bad_spec.returncode == 2
    assert '`parameters.sigma` must be a positive number, got 0' in bad_spec.stderr
    missing_file = run({**TERSOFF, 'parameters': {**TERSOFF['parameters'], 'potential_files': ['/no/C.tersoff']}})
    assert missing_file.returncode == 2
    assert "`parameters.potential_files` ['/no/C.tersoff'] do not exist on this computer" in missing_file.stderr
    unreadable = run({'name': 'emt'}, dataset='calculator.json')
    assert unreadable.returncode == 3
    assert 'cannot be opened as HDF5' in unreadable.stderr
    unwritable = run({'name': 'emt'}, output='no/such/folder/labelled.h5')
    assert unwritable.returncode == 2
    assert '--output no/such/folder/labelled.h5' in unwritable.stderr
    assert not (tmp_path / 'labelled.h5').exists(), 'a run that fails writes no output'
    assert not list(tmp_path.glob('*.partial'))
