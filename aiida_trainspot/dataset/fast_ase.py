"""Conversions between blocks of frames and ``ase.Atoms`` with single-point calculators, without ASE's constructors.

Reading: ``Atoms(...)`` checks and converts each argument, and ``SinglePointCalculator(atoms, ...)`` copies the atoms
again and parses a path; per frame that was most of the time of reading a dataset as ``ase.Atoms``. Here each
column of a block is converted once and copied a few frames at a time, and each object gets the attributes ASE's
constructors give it (the way ``Atoms.copy`` fills ``arrays``). The attribute names are checked once against
objects that ASE's own constructors build (:data:`FAST`); if a future ASE has others, its constructors are used.

Writing: the labels and arrays of a block are gathered in lists and stacked with one numpy call per column.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cell import Cell

_ATOMS_ATTRIBUTES = {'_cellobj', '_pbc', 'arrays', '_celldisp', '_constraints', 'info', '_calc'}
_CALC_ATTRIBUTES = {'atoms', 'results', 'parameters', '_directory', 'prefix', 'get_spin_polarized', 'use_cache'}


def _reference() -> tuple[bool, dict[str, Any]]:
    """Return whether ASE builds atoms and calculators with the attributes filled here, and the calculator's constants.

    The constants are shared by all calculators: ``get_spin_polarized`` stays bound to the reference calculator (it
    only warns that it is deprecated), so that a calculator is not a reference cycle that only the cyclic garbage
    collector frees.
    """
    atoms = Atoms(numbers=[1], positions=[[0.0, 0.0, 0.0]], cell=np.eye(3), pbc=True)
    calc = SinglePointCalculator(atoms, energy=0.0)
    state = vars(calc)
    fast = (
        set(vars(atoms)) == _ATOMS_ATTRIBUTES
        and set(vars(atoms.cell)) == {'array'}
        and set(atoms.arrays) == {'numbers', 'positions'}
        and set(state) == _CALC_ATTRIBUTES
        and type(state['parameters']) is not dict  # ASE's Parameters, a dict subclass
        and not state['parameters']
    )
    constants = {key: value for key, value in state.items() if key not in ('atoms', 'results', 'parameters')}
    return fast, {'constants': constants, 'parameters': type(state['parameters'])}


FAST, _CALC = _reference()
"""Whether blocks are built by setting attributes (True for the ASE versions this was checked against)."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, restoring it on exit.

    Converting a block of frames allocates enough to trigger collections, which traverse every live object (also
    all the frames a caller holds) while none of what the conversion makes is garbage yet.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class AtomsColumns:
    """A block of frames as columns: atom rows ``offsets[i]:offsets[i + 1]`` belong to frame ``i``.

    ``arrays`` are extra per-atom columns with a mask of the frames that have them; ``results`` hold each frame's
    calculator results (no calculator when empty), whose arrays are the frame's own.
    """

    offsets: np.ndarray
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    info: list[dict[str, Any]]
    results: list[dict[str, Any]]
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


FRAMES_PER_COPY = 64
"""Frames whose rows are copied together: their arrays are views of that copy, so that a frame kept alone keeps the
memory of at most this many frames alive, while each frame costs no memory allocation of its own (those were as slow
as the rest of the building together)."""


def split_copy(values: np.ndarray, offsets: np.ndarray, dtype: Any = None) -> list[np.ndarray]:
    """Return the rows ``offsets[i]:offsets[i + 1]`` of ``values`` for each frame ``i``, in fresh memory.

    Each frame's rows are a view of a copy shared by at most :data:`FRAMES_PER_COPY` frames, not of ``values``.
    """
    values = np.asarray(values, dtype=dtype)
    bounds = offsets.tolist()
    sizes = np.diff(offsets)
    uniform = len(sizes) > 0 and bool((sizes == sizes[0]).all())
    frames: list[np.ndarray] = []
    for start in range(0, len(sizes), FRAMES_PER_COPY):
        stop = min(start + FRAMES_PER_COPY, len(sizes))
        rows = values[bounds[start] : bounds[stop]].copy()
        if uniform:
            frames.extend(rows.reshape(stop - start, int(sizes[0]), *values.shape[1:]))
        else:
            base = bounds[start]
            frames.extend(
                rows[first - base : last - base] for first, last in itertools.pairwise(bounds[start : stop + 1])
            )
    return frames


def split_rows(values: np.ndarray, dtype: Any = None) -> list[np.ndarray]:
    """Return each row of ``values`` in fresh memory (views of copies of :data:`FRAMES_PER_COPY` rows)."""
    values = np.asarray(values, dtype=dtype)
    frames: list[np.ndarray] = []
    for start in range(0, len(values), FRAMES_PER_COPY):
        frames.extend(values[start : start + FRAMES_PER_COPY].copy())
    return frames


def _copies(block: AtomsColumns) -> tuple[list, ...]:
    """Return per-frame copies of each column of ``block``, extra per-atom columns last."""
    return (
        split_copy(block.numbers, block.offsets, np.int64),
        split_copy(block.positions, block.offsets, np.float64),
        split_rows(block.cell, np.float64),
        split_rows(block.pbc, bool),
        split_rows(np.zeros((len(block.info), 3, 1))),
        {name: split_copy(values, block.offsets) for name, (values, _) in block.arrays.items()},
    )


def iter_atoms(block: AtomsColumns) -> Iterator[Atoms]:
    """Yield the frames of ``block`` as ``ase.Atoms``, each with a single-point calculator if it has results.

    No array is shared between frames nor with ``block`` (see :func:`split_copy`), and the calculator holds its own
    copy of the atoms (the state its results belong to), as ``SinglePointCalculator(atoms, ...)`` would make; the
    result arrays are taken as they are. Frames are built as they are asked for: a caller that drops each frame
    before the next leaves the garbage collector nothing of them to traverse.
    """
    if not FAST:
        yield from _iter_atoms_with_constructors(block)
        return
    own = _copies(block)
    copies = _copies(block) if any(block.results) else own
    extras = [(name, present.tolist()) for name, (_, present) in block.arrays.items()]
    new, constants, parameters = object.__new__, _CALC['constants'], _CALC['parameters']
    for index, (info, results) in enumerate(zip(block.info, block.results, strict=True)):
        atoms = new(Atoms)
        atoms.__dict__ = _atoms_state(own, index, info, extras)
        if results:
            atoms_copy = new(Atoms)
            atoms_copy.__dict__ = _atoms_state(copies, index, dict(info), extras)
            calc = new(SinglePointCalculator)
            calc.__dict__ = {**constants, 'atoms': atoms_copy, 'results': results, 'parameters': parameters()}
            atoms.__dict__['_calc'] = calc
        yield atoms


def _atoms_state(columns: tuple[list, ...], index: int, info: dict, extras: list[tuple[str, list]]) -> dict[str, Any]:
    """Return the attributes ``Atoms(numbers=..., positions=..., cell=..., pbc=...)`` has, for frame ``index``."""
    numbers, positions, cells, pbcs, celldisps, arrays = columns
    cell = object.__new__(Cell)
    cell.__dict__ = {'array': cells[index]}
    state = {
        '_cellobj': cell,
        '_pbc': pbcs[index],
        'arrays': {'numbers': numbers[index], 'positions': positions[index]},
        '_celldisp': celldisps[index],
        '_constraints': [],
        'info': info,
        '_calc': None,
    }
    for name, present in extras:
        if present[index]:
            state['arrays'][name] = arrays[name][index]
    return state


def _iter_atoms_with_constructors(block: AtomsColumns) -> Iterator[Atoms]:
    """Yield the frames of ``block`` as ``ase.Atoms`` built by ASE's constructors (see :func:`iter_atoms`)."""
    bounds = block.offsets.tolist()
    for index, (info, results) in enumerate(zip(block.info, block.results, strict=True)):
        start, stop = bounds[index], bounds[index + 1]
        atoms = Atoms(
            numbers=block.numbers[start:stop],
            positions=block.positions[start:stop],
            cell=block.cell[index],
            pbc=block.pbc[index],
            info=info,
        )
        for name, (values, present) in block.arrays.items():
            if present[index]:
                atoms.arrays[name] = np.array(values[start:stop])
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        yield atoms


VOIGT_TO_FULL = np.array([0, 5, 4, 5, 1, 3, 4, 3, 2])
"""Indices that turn a Voigt-6 stress (xx, yy, zz, yz, xz, xy) into a flat 3×3 tensor."""


@dataclass
class LabelColumns:
    """The labels of a block as columns; NaN where a frame has none."""

    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray


def collect(
    structures: Sequence[Atoms], energy_key: str | None, forces_key: str | None, stress_key: str | None
) -> dict[str, list]:
    """Return the per-frame objects of ``structures`` (not copied) in lists by name.

    Labels are the calculator's results, else (when a key is given) ``atoms.info[energy_key]``,
    ``atoms.arrays[forces_key]`` and ``atoms.info[stress_key]``; ``None`` where a frame has none.
    """
    empty: dict[str, Any] = {}
    infos = [atoms.info for atoms in structures]
    arrays = [atoms.arrays for atoms in structures]
    results = [empty if (calc := atoms.calc) is None else calc.results for atoms in structures]
    labels = {}
    for name, key, where in (
        ('energy', energy_key, infos),
        ('forces', forces_key, arrays),
        ('stress', stress_key, infos),
    ):
        values = [frame_results.get(name) for frame_results in results]
        if key is not None:
            values = [place.get(key) if value is None else value for value, place in zip(values, where, strict=True)]
        labels[name] = values
    return {
        'numbers': [frame_arrays['numbers'] for frame_arrays in arrays],
        'positions': [frame_arrays['positions'] for frame_arrays in arrays],
        'cell': [atoms.cell.array for atoms in structures],
        'pbc': [atoms.pbc for atoms in structures],
        'info': infos,
        **labels,
    }


def stack_labels(natoms: np.ndarray, energies: list, forces: list, stresses: list) -> LabelColumns | None:
    """Return the labels stacked in columns, or ``None`` unless every given label is finite and of its shape.

    Shapes: energy a scalar, forces ``(natoms, 3)`` arrays, stress ``(6,)`` (Voigt), ``(9,)`` or ``(3, 3)`` arrays.
    On ``None`` the caller converts frame by frame, which names the first bad frame and field.
    """
    try:
        energy = np.array([np.nan if value is None else value for value in energies], dtype=np.float64)
        given = np.array([value is not None for value in energies], dtype=bool)
        if energy.shape != (len(energies),) or not np.isfinite(energy[given]).all():
            return None
        force_column = _stack_forces(natoms, forces)
        stress = _stack_stress(stresses)
    except (TypeError, ValueError):
        return None
    if force_column is None or stress is None:
        return None
    return LabelColumns(energy=energy, forces=force_column, stress=stress.reshape(-1, 3, 3))


def _stack_forces(natoms: np.ndarray, forces: list) -> np.ndarray | None:
    """Return the forces as one ``(N, 3)`` column, NaN for frames without; ``None`` if one is wrong."""
    if not len(natoms):
        return np.zeros((0, 3))
    missing = np.full((int(natoms.max()), 3), np.nan)
    rows = []
    for count, value in zip(natoms.tolist(), forces, strict=True):
        if value is None:
            rows.append(missing[:count])
        elif type(value) is np.ndarray and value.shape == (count, 3):
            rows.append(value)
        else:
            return None
    column = np.concatenate(rows, dtype=np.float64)
    if np.isfinite(column).all():
        return column
    bad = ~np.isfinite(column).all(axis=1)
    return None if (bad & np.repeat([value is not None for value in forces], natoms)).any() else column


def _stack_stress(stresses: list) -> np.ndarray | None:
    """Return the stresses as an ``(F, 9)`` array, NaN for frames without; ``None`` if one is wrong."""
    stress = np.full((len(stresses), 9), np.nan)
    voigt: dict[int, np.ndarray] = {}
    full: dict[int, np.ndarray] = {}
    for index, value in enumerate(stresses):
        if value is None:
            continue
        if type(value) is not np.ndarray:
            return None
        if value.shape == (6,):
            voigt[index] = value
        elif value.shape in ((9,), (3, 3)):
            full[index] = value.reshape(9)
        else:
            return None
    if voigt:
        stress[list(voigt)] = np.array(list(voigt.values()), dtype=np.float64)[:, VOIGT_TO_FULL]
    if full:
        stress[list(full)] = np.array(list(full.values()), dtype=np.float64)
    given = [*voigt, *full]
    return stress if np.isfinite(stress[given]).all() else None
