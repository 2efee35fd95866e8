import io
import warnings

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_trainspot.dataset import (
    MACE_KEYS,
    METATRAIN_KEYS,
    FrameBatch,
    batch_from_atoms,
    frame_from_atoms,
    frame_to_atoms,
    iter_atoms_from_batch,
    iter_batches_from_atoms,
    iter_frames_from_extxyz,
    write_extxyz,
)

pytestmark = pytest.mark.kernel


def test_ase_round_trip_keeps_labels_and_metadata(labelled_frames):
    frame = labelled_frames[2]
    frame.stress = (frame.stress + frame.stress.T) / 2  # ASE keeps stress in Voigt form: symmetric only
    atoms = frame_to_atoms(frame)
    assert atoms.get_potential_energy() == frame.energy
    np.testing.assert_allclose(atoms.get_stress(voigt=False), frame.stress)
    assert atoms.info['split'] == 'test' and atoms.info['index'] == 2
    back = frame_from_atoms(atoms)
    np.testing.assert_allclose(back.stress, frame.stress)
    np.testing.assert_array_equal(back.forces, frame.forces)
    assert (back.split, back.origin, back.iteration, back.info) == ('test', 'input', 0, {'index': 2})


def test_labels_from_voigt_stress_and_custom_keys():
    atoms = Atoms('C2', positions=[[0, 0, 0], [1, 1, 1]], cell=np.eye(3) * 3, pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-2.0, stress=[1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(frame_from_atoms(atoms).stress, [[1, 6, 5], [6, 2, 4], [5, 4, 3]])
    atoms.calc = None
    atoms.info['DFT_energy'] = -3.0
    atoms.arrays['DFT_forces'] = np.ones((2, 3))
    frame = frame_from_atoms(atoms, MACE_KEYS.__class__(energy='DFT_energy', forces='DFT_forces'))
    assert frame.energy == -3.0 and frame.labelled and frame.stress is None


def write_training_file(path, frames, keys):
    with open(path, 'w', encoding='utf-8') as handle:
        write_extxyz([FrameBatch.from_frames(frames)], handle, keys)


@pytest.fixture
def training_frames(labelled_frames):
    """Labelled frames plus an isolated atom (non-periodic, no stress)."""
    isolated = frame_from_atoms(Atoms('C', cell=np.eye(3) * 10, pbc=False))
    isolated.energy, isolated.forces = -150.0, np.zeros((1, 3))
    return [*labelled_frames[:3], isolated]


def test_mace_reads_our_training_file(tmp_path, training_frames):
    """MACE's own loader finds energies, forces, stresses and the isolated-atom E0 where we put them."""
    from mace.data.utils import KeySpecification, load_from_xyz

    write_training_file(tmp_path / 'train.xyz', training_frames, MACE_KEYS)
    keys = KeySpecification(
        info_keys={'energy': MACE_KEYS.energy, 'stress': MACE_KEYS.stress, 'head': 'head'},
        arrays_keys={'forces': MACE_KEYS.forces},
    )
    atomic_energies, configurations = load_from_xyz(str(tmp_path / 'train.xyz'), keys, extract_atomic_energies=True)
    assert atomic_energies == {6: -150.0}
    assert len(configurations) == 3
    for configuration, frame in zip(configurations, training_frames, strict=False):
        assert configuration.properties['energy'] == pytest.approx(frame.energy)
        np.testing.assert_allclose(configuration.properties['forces'], frame.forces)
        np.testing.assert_allclose(configuration.properties['stress'], frame.stress)


def test_metatrain_reads_our_training_file(tmp_path, training_frames):
    """Metatrain's ASE readers get energy, forces and stress (NaN where there is none, which it accepts)."""
    from metatrain.utils.data.readers.ase import _read_energy_ase, _read_forces_ase, _read_stress_ase, read_systems

    path = str(tmp_path / 'train.xyz')
    write_training_file(path, training_frames, METATRAIN_KEYS)
    assert [len(system) for system in read_systems(path)] == [frame.natoms for frame in training_frames]
    energies = [block.values.item() for block in _read_energy_ase(path, METATRAIN_KEYS.energy)]
    assert energies == pytest.approx([frame.energy for frame in training_frames])
    forces = _read_forces_ase(path, METATRAIN_KEYS.forces)
    np.testing.assert_allclose(-forces[1].values.numpy().reshape(-1, 3), training_frames[1].forces)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        stresses = _read_stress_ase(path, METATRAIN_KEYS.stress)
    volume = abs(np.linalg.det(training_frames[0].cell))
    np.testing.assert_allclose(stresses[0].values.numpy().reshape(3, 3), training_frames[0].stress * volume)
    assert np.isnan(stresses[3].values.numpy()).all()


def test_extxyz_round_trip(tmp_path, training_frames):
    buffer = io.StringIO()
    assert write_extxyz([FrameBatch.from_frames(training_frames)], buffer) == 4
    (tmp_path / 'data.xyz').write_text(buffer.getvalue())
    frames = list(iter_frames_from_extxyz(tmp_path / 'data.xyz', MACE_KEYS))
    assert [frame.energy for frame in frames] == pytest.approx([frame.energy for frame in training_frames])
    np.testing.assert_allclose(frames[0].stress, training_frames[0].stress)
    assert frames[3].stress is None
    assert ase.io.read(tmp_path / 'data.xyz', index=3).info['config_type'] == 'IsolatedAtom'


def labelled_atoms(count: int, natoms: int = 4, seed: int = 0) -> list[Atoms]:
    """Return ``count`` labelled carbon structures with metadata, from a seeded generator."""
    rng = np.random.default_rng(seed)
    structures = []
    for index in range(count):
        atoms = Atoms(numbers=[6] * natoms, positions=rng.random((natoms, 3)) * 5, cell=np.eye(3) * 5, pbc=True)
        atoms.calc = SinglePointCalculator(
            atoms, energy=rng.normal(), forces=rng.normal(size=(natoms, 3)), stress=rng.normal(size=6)
        )
        atoms.info.update(origin='md', iteration=index, split='train', index=index)
        structures.append(atoms)
    return structures


def test_block_conversion_matches_frame_by_frame_conversion():
    structures = labelled_atoms(7)
    structures[3].calc = None  # an unlabelled frame among labelled ones
    blocks = list(iter_batches_from_atoms(structures, block_frames=3))
    assert [len(block) for block in blocks] == [3, 3, 1]
    back = [atoms for block in blocks for atoms in iter_atoms_from_batch(block)]
    for original, atoms in zip(structures, back, strict=True):
        np.testing.assert_array_equal(atoms.positions, original.positions)
        assert atoms.info['iteration'] == original.info['iteration'] and atoms.info['index'] == original.info['index']
        if original.calc is None:
            assert atoms.calc is None
            continue
        np.testing.assert_array_equal(atoms.get_forces(), original.get_forces())
        np.testing.assert_allclose(atoms.get_stress(), original.get_stress())
        assert atoms.get_potential_energy() == original.get_potential_energy()


@pytest.mark.parametrize(
    ('spoil', 'message'),
    [
        (lambda atoms: atoms.calc.results.update(forces=np.zeros((3, 3))), r'frame 4: field `forces` has shape'),
        (lambda atoms: atoms.calc.results.update(energy=np.inf), 'frame 4: field `energy` contains NaN'),
        (
            lambda atoms: atoms.calc.results['forces'].__setitem__((2, 0), np.nan),
            'frame 4: field `forces` contains NaN',
        ),
        (lambda atoms: atoms.calc.results['stress'].__setitem__(1, np.inf), 'frame 4: field `stress` contains NaN'),
        (lambda atoms: atoms.calc.results.update(stress=np.zeros(5)), 'frame 4: field `stress` has shape'),
        (lambda atoms: atoms.positions.__setitem__((1, 2), np.nan), 'frame 4: field `positions` contains NaN'),
        (lambda atoms: atoms.numbers.__setitem__(0, 0), r'frame 4: field `numbers` has unknown atomic numbers \[0\]'),
        (lambda atoms: atoms.info.update(split='holdout'), "frame 4: field `split` is 'holdout'"),
        (lambda atoms: atoms.info.update(tag=object()), 'frame 4: field `info` is not JSON'),
    ],
)
def test_bad_structure_is_named_by_its_index_in_the_whole_input(spoil, message):
    structures = labelled_atoms(6)
    spoil(structures[4])
    with pytest.raises(ValueError, match=message):
        list(iter_batches_from_atoms(structures, block_frames=3))


def test_empty_structure_is_rejected():
    with pytest.raises(ValueError, match='frame 1: field `numbers` is empty'):
        batch_from_atoms([Atoms('C', cell=np.eye(3)), Atoms()])


def test_numpy_values_nested_in_info_are_kept():
    from ase.build import fcc111

    slab = fcc111('Cu', size=(1, 1, 2), vacuum=5.0)  # info['adsorbate_info'] holds numpy arrays in a dict
    frame = frame_from_atoms(slab)
    assert frame.info['adsorbate_info']['sites']['ontop'] == [0.0, 0.0]
