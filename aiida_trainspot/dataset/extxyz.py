"""Extended-XYZ files: read into frames, and written with labels under the keys MACE and metatrain read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import ase.io
import numpy as np
from ase import Atoms

from .batch import FrameBatch
from .convert import MACE_KEYS, METADATA_KEYS, LabelKeys, iter_batches_from_atoms
from .frame import Frame

ISOLATED_ATOM_CONFIG_TYPE = 'IsolatedAtom'
"""``config_type`` of single-atom non-periodic frames, from which MACE takes the atomic reference energies (E0s)."""


def iter_frames_from_extxyz(path: str | Path, keys: LabelKeys | None = None) -> Iterator[Frame]:
    """Yield the frames of an extended-XYZ file one by one (labels as ASE reads them, or under ``keys``)."""
    for batch in iter_batches_from_atoms(ase.io.iread(path, index=':', format='extxyz'), keys):
        yield from batch.frames()


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
