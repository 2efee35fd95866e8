"""Conversion between frames and ``ase.Atoms``, and extended-XYZ files for MACE and metatrain."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from .batch import FrameBatch
from .frame import Frame

METADATA_KEYS = ('origin', 'iteration', 'split', 'failure_reason')
"""Frame metadata carried in ``atoms.info`` under these keys."""


@dataclass(frozen=True)
class LabelKeys:
    """Where labels live in ``atoms.info`` (energy, stress) and ``atoms.arrays`` (forces) of an extended-XYZ file.

    ``missing_stress_as_nan`` writes a NaN tensor where a frame has no stress (metatrain needs the key in every frame
    and skips NaN); otherwise the key is left out (MACE then gives that frame's stress zero weight, NaN would poison
    its loss).
    """

    energy: str = 'REF_energy'
    forces: str = 'REF_forces'
    stress: str = 'REF_stress'
    missing_stress_as_nan: bool = False


MACE_KEYS = LabelKeys()
"""Training files for MACE: ``energy_key``/``forces_key``/``stress_key`` are these keys."""

METATRAIN_KEYS = LabelKeys(missing_stress_as_nan=True)
"""Training files for metatrain: ``targets.energy.key``/``forces.key``/``stress.key`` are these keys (a full 3×3
stress, which metatrain requires)."""

ISOLATED_ATOM_CONFIG_TYPE = 'IsolatedAtom'
"""``config_type`` of single-atom non-periodic frames, from which MACE takes the atomic reference energies (E0s)."""


def _jsonable(value: Any) -> Any:
    """Return ``value`` with numpy scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def _full_stress(stress: Any) -> np.ndarray:
    """Return a stress given as Voigt-6, flat 9 or 3×3 values as a 3×3 array."""
    stress = np.asarray(stress, dtype=float)
    return voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)


def frame_from_atoms(atoms: Atoms, keys: LabelKeys | None = None) -> Frame:
    """Return the frame of ``atoms``: labels from its single-point calculator, else from ``keys`` in info/arrays.

    ``atoms.info`` entries named in :data:`METADATA_KEYS` become frame metadata, the other entries go to ``info``.
    """
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    info = dict(atoms.info)
    if keys is not None:
        results.setdefault('energy', info.pop(keys.energy, None))
        results.setdefault('stress', info.pop(keys.stress, None))
        results.setdefault('forces', atoms.arrays.get(keys.forces))
    metadata = {key: info.pop(key) for key in METADATA_KEYS if key in info}
    info.pop('config_type', None)
    return Frame(
        numbers=atoms.numbers,
        positions=atoms.positions,
        cell=atoms.cell.array,
        pbc=atoms.pbc,
        energy=results.get('energy'),
        forces=results.get('forces'),
        stress=None if results.get('stress') is None else _full_stress(results['stress']),
        info={key: _jsonable(value) for key, value in info.items()},
        **metadata,
    )


def frame_to_atoms(frame: Frame) -> Atoms:
    """Return ``frame`` as ``ase.Atoms`` with its labels in a single-point calculator and metadata in ``info``."""
    atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    atoms.info.update(frame.info)
    atoms.info.update({key: getattr(frame, key) for key in METADATA_KEYS})
    for name, values in frame.atom_arrays.items():
        atoms.arrays[name] = np.array(values)
    atoms.info.update({name: np.array(values) for name, values in frame.frame_arrays.items()})
    results = {}
    if frame.energy is not None:
        results['energy'] = frame.energy
    if frame.forces is not None:
        results['forces'] = np.array(frame.forces)
    if frame.stress is not None:
        results['stress'] = full_3x3_to_voigt_6_stress(frame.stress)
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def iter_frames_from_extxyz(path: str | Path, keys: LabelKeys | None = None) -> Iterator[Frame]:
    """Yield the frames of an extended-XYZ file one by one (labels as ASE reads them, or under ``keys``)."""
    for atoms in ase.io.iread(path, index=':', format='extxyz'):
        yield frame_from_atoms(atoms, keys)


def _extxyz_atoms(frame: Frame, keys: LabelKeys) -> Atoms:
    """Return the ``ase.Atoms`` written to an extended-XYZ file: labels under ``keys``, scalar metadata in info."""
    atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    atoms.info.update({key: getattr(frame, key) for key in METADATA_KEYS if getattr(frame, key) != ''})
    atoms.info.update({key: value for key, value in frame.info.items() if isinstance(value, str | int | float)})
    if frame.natoms == 1 and not frame.pbc.any():
        atoms.info['config_type'] = ISOLATED_ATOM_CONFIG_TYPE
    if frame.energy is not None:
        atoms.info[keys.energy] = frame.energy
    if frame.stress is not None:
        atoms.info[keys.stress] = np.array(frame.stress)
    elif keys.missing_stress_as_nan:
        atoms.info[keys.stress] = np.full((3, 3), np.nan)
    if frame.forces is not None:
        atoms.arrays[keys.forces] = np.array(frame.forces)
    return atoms


def write_extxyz(batches: Iterable[FrameBatch], fileobj: IO[str], keys: LabelKeys = MACE_KEYS) -> int:
    """Write the frames of ``batches`` to an open text file in extended-XYZ; return the number of frames written."""
    count = 0
    for batch in batches:
        atoms_list = [_extxyz_atoms(frame, keys) for frame in batch.frames()]
        ase.io.write(fileobj, atoms_list, format='extxyz')
        count += len(atoms_list)
    return count
