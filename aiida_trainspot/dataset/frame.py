"""One atomic configuration with its optional labels and metadata, and its validation.

Units: positions and cell in Å, energy in eV, forces in eV/Å, stress in eV/Å³ with ASE's sign convention
(``stress = (1/V) dE/dstrain``: a compressed crystal has a *negative* stress; Quantum ESPRESSO prints the opposite).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase.data import chemical_symbols

SPLITS = ('', 'train', 'valid', 'test')
"""Split tags a frame can carry; the empty string means 'not assigned yet'."""

MAX_ATOMIC_NUMBER = len(chemical_symbols) - 1


@dataclass
class Frame:
    """An atomic configuration, its DFT labels (if any) and where it came from.

    ``frame_arrays`` and ``atom_arrays`` hold extra numeric columns (e.g. committee predictions): a frame array has any
    shape, an atom array has one row per atom.
    """

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    origin: str = ''
    iteration: int = 0
    split: str = ''
    failure_reason: str = ''
    info: dict[str, Any] = field(default_factory=dict)
    frame_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    atom_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def natoms(self) -> int:
        """Return the number of atoms."""
        return len(self.numbers)

    @property
    def labelled(self) -> bool:
        """Return whether the frame carries an energy and forces."""
        return self.energy is not None and self.forces is not None


def _as_array(value: Any, dtype: type, shape: tuple[int, ...], index: int, name: str) -> np.ndarray:
    """Return ``value`` as an array of ``shape`` (-1 matches any length), or raise a ``ValueError`` naming it.

    Finiteness is left to :func:`check_finite`, which checks a whole block at once.
    """
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exception:
        raise ValueError(f'frame {index}: field `{name}` cannot be read as {dtype.__name__}: {exception}') from None
    if array.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, array.shape, strict=True)):
        wanted = tuple('n' if item == -1 else item for item in shape)
        raise ValueError(f'frame {index}: field `{name}` has shape {array.shape}, expected {wanted}')
    return array


def check_finite(frames: list[Frame], first_index: int) -> None:
    """Raise ``ValueError`` naming the first frame and field of ``frames`` with a NaN or infinite value."""
    columns: dict[str, list[tuple[int, np.ndarray]]] = {}
    for offset, frame in enumerate(frames):
        fields = {name: getattr(frame, name) for name in ('positions', 'cell', 'energy', 'forces', 'stress')}
        for name, values in {**fields, **frame.frame_arrays, **frame.atom_arrays}.items():
            if values is not None:
                columns.setdefault(name, []).append((offset, np.ravel(values)))
    for name, entries in columns.items():
        if np.isfinite(np.concatenate([values for _, values in entries])).all():
            continue
        offset = next(offset for offset, values in entries if not np.isfinite(values).all())
        raise ValueError(f'frame {first_index + offset}: field `{name}` contains NaN or infinite values')


def validate_frame(frame: Frame, index: int) -> Frame:
    """Return a copy of ``frame`` with arrays of the canonical dtype and shape, or raise ``ValueError``.

    The message names the frame ``index`` and the offending field, so that a bad dataset is rejected before anything
    is stored. Values are checked to be finite by :func:`check_finite`, a block at a time.
    """
    numbers = _as_array(frame.numbers, np.int64, (-1,), index, 'numbers')
    natoms = len(numbers)
    if natoms == 0:
        raise ValueError(f'frame {index}: field `numbers` is empty: a frame needs at least one atom')
    if numbers.min() < 1 or numbers.max() > MAX_ATOMIC_NUMBER:
        unknown = sorted({int(z) for z in numbers if z < 1 or z > MAX_ATOMIC_NUMBER})
        raise ValueError(f'frame {index}: field `numbers` has unknown atomic numbers {unknown}')
    energy = None
    if frame.energy is not None:
        energy = float(_as_array(frame.energy, np.float64, (), index, 'energy'))
    if frame.split not in SPLITS:
        raise ValueError(f'frame {index}: field `split` is {frame.split!r}, expected one of {SPLITS}')
    try:
        json.dumps(frame.info)
    except (TypeError, ValueError) as exception:
        raise ValueError(f'frame {index}: field `info` is not JSON-serialisable: {exception}') from None
    atom_arrays = {
        name: _as_array(value, np.float64, (natoms, *np.shape(value)[1:]), index, name)
        for name, value in frame.atom_arrays.items()
    }
    frame_arrays = {
        name: _as_array(value, np.float64, np.shape(value), index, name) for name, value in frame.frame_arrays.items()
    }
    return Frame(
        numbers=numbers,
        positions=_as_array(frame.positions, np.float64, (natoms, 3), index, 'positions'),
        cell=_as_array(frame.cell, np.float64, (3, 3), index, 'cell'),
        pbc=_as_array(frame.pbc, bool, (3,), index, 'pbc'),
        energy=energy,
        forces=None if frame.forces is None else _as_array(frame.forces, np.float64, (natoms, 3), index, 'forces'),
        stress=None if frame.stress is None else _as_array(frame.stress, np.float64, (3, 3), index, 'stress'),
        origin=str(frame.origin),
        iteration=int(frame.iteration),
        split=frame.split,
        failure_reason=str(frame.failure_reason),
        info=dict(frame.info),
        frame_arrays=frame_arrays,
        atom_arrays=atom_arrays,
    )
