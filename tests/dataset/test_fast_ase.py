"""The fast block conversions between ``ase.Atoms`` and columns equal ASE's constructors and frame-by-frame conversion.

Same objects and attributes, calculator results and extended-XYZ text.
"""

import copy
import gc
import io

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_trainspot.dataset import FrameBatch, LabelKeys, batch_from_atoms, convert, fast_ase, iter_atoms_from_batch
from aiida_trainspot.dataset.frame import Frame

pytestmark = pytest.mark.kernel


def mixed_batch(sizes=(2, 5, 3, 5)) -> FrameBatch:
    """Return a block whose frames have all, some or no labels, metadata, and extra columns on some frames."""
    rng = np.random.default_rng(7)
    frames = []
    for index, natoms in enumerate(sizes):
        stress = rng.normal(size=(3, 3))
        frames.append(
            Frame(
                numbers=rng.integers(1, 30, natoms),
                positions=rng.random((natoms, 3)) * 4,
                cell=np.diag([4.0, 5.0, 6.0]) + 0.1 * index,
                pbc=np.array([True, index % 2 == 0, True]),
                energy=None if index == 2 else float(rng.normal()),
                forces=None if index in (1, 2) else rng.normal(size=(natoms, 3)),
                stress=None if index != 0 else (stress + stress.T) / 2,  # ASE keeps stress in Voigt form
                origin=('input', 'md')[index % 2],
                iteration=index,
                split=('train', '', 'test', 'valid')[index],
                failure_reason='scf' if index == 2 else '',
                info={'temperature': 300.0 + index, 'tags': {'a': [1, 2]}} if index != 3 else {},
                frame_arrays={'sigma': rng.random(3)} if index in (0, 3) else {},
                atom_arrays={'charges': rng.random(natoms)} if index != 1 else {},
            )
        )
    return FrameBatch.from_frames(frames)


def assert_same_arrays(one: dict, other: dict) -> None:
    assert list(one) == list(other)
    for name, value in one.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == other[name].dtype and value.shape == other[name].shape, name
            np.testing.assert_array_equal(value, other[name])
        else:
            assert value == other[name], name


def assert_same_atoms(fast: Atoms, built: Atoms) -> None:
    """Check that ``fast`` is what ASE's constructors built as ``built``, attribute by attribute."""
    assert type(fast) is Atoms and set(vars(fast)) == set(vars(built))
    assert fast == built
    assert_same_arrays(fast.arrays, built.arrays)
    assert_same_arrays(fast.info, built.info)
    np.testing.assert_array_equal(fast.cell.array, built.cell.array)
    np.testing.assert_array_equal(fast.get_celldisp(), built.get_celldisp())
    assert fast.pbc.dtype == bool and fast.constraints == built.constraints == []
    if built.calc is None:
        assert fast.calc is None
        return
    assert type(fast.calc) is SinglePointCalculator and set(vars(fast.calc)) == set(vars(built.calc))
    assert_same_arrays(fast.calc.results, built.calc.results)
    assert fast.calc.atoms == built.calc.atoms and fast.calc.atoms is not fast
    assert_same_arrays(fast.calc.atoms.arrays, built.calc.atoms.arrays)
    assert fast.calc.parameters == built.calc.parameters and fast.calc.parameters is not built.calc.parameters
    assert fast.calc.check_state(fast) == [] and str(fast.calc) == str(built.calc)


def test_fast_path_is_used_with_this_ase():
    """If this fails, a new ASE gives atoms or calculators other attributes: update fast_ase (reads are slower)."""
    assert fast_ase.FAST


@pytest.mark.parametrize('sizes', [(2, 5, 3, 5), (4, 4, 4, 4)], ids=['varied sizes', 'equal sizes'])
def test_fast_atoms_equal_those_of_ase_constructors(sizes):
    batch = mixed_batch(sizes)
    fast = list(iter_atoms_from_batch(batch))
    columns = convert.AtomsColumns(
        offsets=batch.offsets,
        numbers=batch.numbers,
        positions=batch.positions,
        cell=batch.cell,
        pbc=batch.pbc,
        info=convert._infos(batch),
        results=convert._results(batch, batch.offsets),
        arrays={name: (values, convert._present(values, batch)) for name, values in batch.atom_arrays.items()},
    )
    built = list(fast_ase._iter_atoms_with_constructors(columns))
    assert [atoms.calc is None for atoms in fast] == [False, False, True, False]
    assert 'charges' not in fast[1].arrays and 'sigma' in fast[3].info and 'sigma' not in fast[1].info
    for one, other in zip(fast, built, strict=True):
        assert_same_atoms(one, other)


def test_fast_atoms_write_the_same_extxyz_and_read_back_equal(tmp_path):
    batch = mixed_batch()
    fast = list(iter_atoms_from_batch(batch))
    built = [frame_atoms(frame) for frame in batch.frames()]
    texts = []
    for structures in (fast, built):
        buffer = io.StringIO()
        ase.io.write(buffer, structures, format='extxyz')
        texts.append(buffer.getvalue())
    assert texts[0] == texts[1]
    for atoms in fast:  # ASE's extxyz reader misparses empty string values
        for key in [key for key, value in atoms.info.items() if isinstance(value, str) and not value]:
            del atoms.info[key]
    ase.io.write(tmp_path / 'fast.xyz', fast, format='extxyz')
    back = ase.io.read(tmp_path / 'fast.xyz', index=':')
    for atoms, read in zip(fast, back, strict=True):
        np.testing.assert_allclose(read.positions, atoms.positions, atol=1e-7)  # extxyz keeps 8 decimals
        assert atoms.numbers.tolist() == read.numbers.tolist() and (atoms.pbc == read.pbc).all()
        assert (atoms.info['origin'], atoms.info['iteration']) == (read.info['origin'], read.info['iteration'])
        if atoms.calc is not None:
            assert atoms.get_potential_energy() == pytest.approx(read.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(fast[0].get_forces(), back[0].get_forces())
    np.testing.assert_allclose(fast[0].get_stress(), back[0].get_stress())


def frame_atoms(frame: Frame) -> Atoms:
    """Return ``frame`` as ``ase.Atoms`` made with ASE's constructors only, as a user would."""
    atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    atoms.info.update(frame.info)
    atoms.info.update(origin=frame.origin, iteration=frame.iteration, split=frame.split)
    atoms.info['failure_reason'] = frame.failure_reason
    atoms.info.update({name: np.array(value) for name, value in frame.frame_arrays.items()})
    atoms.arrays.update({name: np.array(value) for name, value in frame.atom_arrays.items()})
    results = {'energy': frame.energy, 'forces': frame.forces}
    if frame.stress is not None:
        results['stress'] = frame.stress.ravel()[[0, 4, 8, 5, 2, 1]]
    if frame.energy is not None or frame.forces is not None:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def test_fast_atoms_own_their_memory_and_behave_like_atoms():
    batch = mixed_batch((3, 3, 3, 3))
    positions = batch.positions.copy()
    structures = list(iter_atoms_from_batch(batch))
    first = structures[0]
    duplicate, deep = first.copy(), copy.deepcopy(first)
    assert duplicate == first == deep and duplicate.info == first.info
    np.testing.assert_array_equal(deep.get_forces(), first.get_forces())
    assert deep.get_potential_energy() == first.get_potential_energy()
    first.positions += 1.0  # as with ASE's calculators, the labels no longer apply
    first.cell[0, 0] = 9.0
    np.testing.assert_array_equal(batch.positions, positions)
    np.testing.assert_array_equal(structures[1].positions, positions[3:6])
    assert structures[1].cell[0, 0] != 9.0 and first.calc.atoms.cell[0, 0] != 9.0
    with pytest.raises(PropertyNotImplementedError):
        first.get_potential_energy()
    assert structures[1].get_potential_energy() == batch.energy[1]
    forces = structures[0].calc.results['forces']
    for array in (first.positions, first.numbers, first.cell.array, first.pbc, forces, first.calc.atoms.positions):
        assert array.base.size <= fast_ase.FRAMES_PER_COPY * array.size  # keeping one frame keeps little more
    assert not np.shares_memory(forces, batch.forces)
    assert not np.shares_memory(forces, structures[3].calc.results['forces'])
    structures[3].info['origin'] = 'changed'
    assert structures[3].calc.atoms.info['origin'] == 'md'


def test_gc_paused_restores_the_collector():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), fast_ase.gc_paused():
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with fast_ase.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def assert_same_batch(one: FrameBatch, other: FrameBatch) -> None:
    for name in ('natoms', 'numbers', 'positions', 'forces', 'cell', 'pbc', 'energy', 'stress', 'iteration', 'split'):
        np.testing.assert_array_equal(getattr(one, name), getattr(other, name), err_msg=name)
        assert getattr(one, name).dtype == getattr(other, name).dtype, name
    assert (one.origin, one.failure_reason, one.info) == (other.origin, other.failure_reason, other.info)


def structures_to_write() -> list[Atoms]:
    """Return structures with labels in the calculator or under custom keys, every stress form, and metadata."""
    rng = np.random.default_rng(3)
    structures = []
    for index in range(8):
        natoms = 2 + index % 3
        atoms = Atoms(numbers=[6] * natoms, positions=rng.random((natoms, 3)) * 3, cell=np.eye(3) * 3, pbc=True)
        stress = (rng.normal(size=6), rng.normal(size=(3, 3)), rng.normal(size=9), None)[index % 4]
        if index % 3:
            atoms.calc = SinglePointCalculator(atoms, energy=rng.normal(), forces=rng.normal(size=(natoms, 3)))
            if stress is not None:
                atoms.calc.results['stress'] = stress
        else:
            atoms.info['DFT_energy'] = rng.normal()
            atoms.arrays['DFT_forces'] = rng.normal(size=(natoms, 3))
        if index > 3:
            atoms.info.update(origin='md', iteration=index, split='valid', step=np.int64(index), dft={'k': [2, 2]})
        structures.append(atoms)
    return structures


@pytest.mark.parametrize('keys', [None, LabelKeys(energy='DFT_energy', forces='DFT_forces')], ids=['calc', 'keys'])
def test_column_conversion_equals_frame_by_frame_conversion(keys):
    structures = structures_to_write()
    assert convert._stacked_batch(structures, keys) is not None
    assert_same_batch(batch_from_atoms(structures, keys), convert._batch_from_records(structures, keys, 0))


def test_labels_the_column_conversion_does_not_take_are_converted_frame_by_frame():
    structures = structures_to_write()
    structures[1].calc.results['forces'] = structures[1].calc.results['forces'].tolist()
    structures[2].calc.results['energy'] = np.array(-1.5)
    assert convert._stacked_batch(structures, None) is None
    batch = batch_from_atoms(structures)
    np.testing.assert_array_equal(batch.forces[2:5], structures[1].get_forces())
    assert batch.energy[2] == -1.5


@pytest.mark.parametrize('equal', [True, False], ids=['equal sizes', 'varied sizes'])
def test_frames_are_cut_from_copies_of_a_few_frames(equal):
    rng = np.random.default_rng(0)
    sizes = np.full(150, 3) if equal else rng.integers(1, 6, 150)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    values = rng.random((int(offsets[-1]), 3))
    frames = fast_ase.split_copy(values, offsets)
    rows = fast_ase.split_rows(values[:150])
    assert len(frames) == len(rows) == 150
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, values[offsets[index] : offsets[index + 1]])
        np.testing.assert_array_equal(rows[index], values[index])
        assert not np.shares_memory(frame, values) and not np.shares_memory(rows[index], values)
        limit = fast_ase.FRAMES_PER_COPY * sizes.max() * 3
        assert frame.base.size <= limit and rows[index].base.size <= fast_ase.FRAMES_PER_COPY * 3
