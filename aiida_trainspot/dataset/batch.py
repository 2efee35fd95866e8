"""A columnar block of frames: the unit in which datasets are written, read and transformed.

Atom columns are concatenated over the frames of the block (``natoms`` gives each frame's share); a missing label
is stored as NaN, which is why NaN is rejected in the labels a user gives (see :func:`validate_frame`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .frame import MAX_ATOMIC_NUMBER, SPLITS, Frame

SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}
DEFAULT_BLOCK_FRAMES = 2048
"""Frames per block when datasets are written and read: bounds the memory a dataset operation needs."""


@dataclass
class FrameBatch:
    """Columns of a contiguous block of frames."""

    natoms: np.ndarray
    numbers: np.ndarray
    positions: np.ndarray
    forces: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: np.ndarray
    stress: np.ndarray
    iteration: np.ndarray
    split: np.ndarray
    origin: list[str]
    failure_reason: list[str]
    info: list[str]
    frame_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    atom_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        """Return the number of frames."""
        return len(self.natoms)

    @property
    def offsets(self) -> np.ndarray:
        """Return the index of each frame's first atom, followed by the total number of atoms."""
        return np.concatenate(([0], np.cumsum(self.natoms, dtype=np.int64)))

    @property
    def labelled(self) -> np.ndarray:
        """Return a boolean mask of the frames that carry an energy and forces."""
        if not len(self):
            return np.zeros(0, dtype=bool)
        forces_missing = np.logical_or.reduceat(np.isnan(self.forces).any(axis=1), self.offsets[:-1])
        return ~np.isnan(self.energy) & ~forces_missing

    def frame(self, index: int) -> Frame:
        """Return frame ``index`` of the block."""
        start, stop = self.offsets[index], self.offsets[index + 1]
        forces = self.forces[start:stop]
        return Frame(
            numbers=self.numbers[start:stop],
            positions=self.positions[start:stop],
            cell=self.cell[index],
            pbc=self.pbc[index],
            energy=None if np.isnan(self.energy[index]) else float(self.energy[index]),
            forces=None if np.isnan(forces).any() else forces,
            stress=None if np.isnan(self.stress[index]).any() else self.stress[index],
            origin=self.origin[index],
            iteration=int(self.iteration[index]),
            split=SPLITS[self.split[index]],
            failure_reason=self.failure_reason[index],
            info=json.loads(self.info[index]),
            frame_arrays={
                name: values[index] for name, values in self.frame_arrays.items() if not np.isnan(values[index]).all()
            },
            atom_arrays={
                name: values[start:stop]
                for name, values in self.atom_arrays.items()
                if not np.isnan(values[start:stop]).all()
            },
        )

    def frames(self) -> Iterator[Frame]:
        """Yield the frames of the block in order."""
        for index in range(len(self)):
            yield self.frame(index)

    def take(self, indices: Sequence[int] | np.ndarray) -> FrameBatch:
        """Return a new block with the frames at ``indices`` (positions within this block), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        offsets = self.offsets
        atom_index = (
            np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in indices])
            if len(indices)
            else np.zeros(0, dtype=np.int64)
        )
        return FrameBatch(
            natoms=self.natoms[indices],
            numbers=self.numbers[atom_index],
            positions=self.positions[atom_index],
            forces=self.forces[atom_index],
            cell=self.cell[indices],
            pbc=self.pbc[indices],
            energy=self.energy[indices],
            stress=self.stress[indices],
            iteration=self.iteration[indices],
            split=self.split[indices],
            origin=[self.origin[i] for i in indices],
            failure_reason=[self.failure_reason[i] for i in indices],
            info=[self.info[i] for i in indices],
            frame_arrays={name: values[indices] for name, values in self.frame_arrays.items()},
            atom_arrays={name: values[atom_index] for name, values in self.atom_arrays.items()},
        )

    @classmethod
    def from_frames(cls, frames: Sequence[Frame]) -> FrameBatch:
        """Return the block of already validated ``frames``; missing labels and extra columns become NaN."""
        natoms = np.array([frame.natoms for frame in frames], dtype=np.int64)
        total = int(natoms.sum())
        nan_atoms = np.full((total, 3), np.nan)
        offsets = np.concatenate(([0], np.cumsum(natoms)))
        forces = nan_atoms.copy()
        for frame, start, stop in zip(frames, offsets[:-1], offsets[1:], strict=True):
            if frame.forces is not None:
                forces[start:stop] = frame.forces
        return cls(
            natoms=natoms,
            numbers=np.concatenate([frame.numbers for frame in frames]) if frames else np.zeros(0, dtype=np.int64),
            positions=np.concatenate([frame.positions for frame in frames]) if frames else nan_atoms,
            forces=forces,
            cell=np.array([frame.cell for frame in frames]).reshape(-1, 3, 3),
            pbc=np.array([frame.pbc for frame in frames], dtype=bool).reshape(-1, 3),
            energy=np.array([np.nan if frame.energy is None else frame.energy for frame in frames], dtype=float),
            stress=np.array(
                [np.full((3, 3), np.nan) if frame.stress is None else frame.stress for frame in frames]
            ).reshape(-1, 3, 3),
            iteration=np.array([frame.iteration for frame in frames], dtype=np.int64),
            split=np.array([SPLIT_CODES[frame.split] for frame in frames], dtype=np.int8),
            origin=[frame.origin for frame in frames],
            failure_reason=[frame.failure_reason for frame in frames],
            info=[json.dumps(frame.info, sort_keys=True) for frame in frames],
            frame_arrays=_stack_extras(frames, offsets, per_atom=False),
            atom_arrays=_stack_extras(frames, offsets, per_atom=True),
        )


def _stack_extras(frames: Sequence[Frame], offsets: np.ndarray, per_atom: bool) -> dict[str, np.ndarray]:
    """Return the extra columns of ``frames`` stacked, NaN where a frame lacks a column."""
    extras = [frame.atom_arrays if per_atom else frame.frame_arrays for frame in frames]
    columns = {}
    for name in sorted({name for extra in extras for name in extra}):
        sample = next(extra[name] for extra in extras if name in extra)
        trailing = sample.shape[1:] if per_atom else sample.shape
        column = np.full((int(offsets[-1]) if per_atom else len(frames), *trailing), np.nan)
        for index, extra in enumerate(extras):
            if name not in extra:
                continue
            if extra[name].shape[int(per_atom) :] != trailing:
                raise ValueError(
                    f'frame {index}: extra column `{name}` has shape {extra[name].shape}, others {trailing}'
                )
            if per_atom:
                column[offsets[index] : offsets[index + 1]] = extra[name]
            else:
                column[index] = extra[name]
        columns[name] = column
    return columns


def validate_batch(batch: FrameBatch, first_index: int = 0) -> None:
    """Raise ``ValueError`` naming the first frame (counted from ``first_index``) and field of ``batch`` that is wrong.

    Frames need atoms of known elements at finite positions in a finite cell; labels may be missing (NaN), never
    infinite.
    """

    def fail(frame: int, name: str, problem: str) -> None:
        raise ValueError(f'frame {first_index + int(frame)}: field `{name}` {problem}')

    def atom_frame(row: int) -> int:
        return int(np.searchsorted(np.cumsum(batch.natoms), row, side='right'))

    if len(batch) and batch.natoms.min() < 1:
        fail(np.argmin(batch.natoms), 'numbers', 'is empty: a frame needs at least one atom')
    unknown = (batch.numbers < 1) | (batch.numbers > MAX_ATOMIC_NUMBER)
    if unknown.any():
        first = np.argmax(unknown)
        fail(atom_frame(first), 'numbers', f'has unknown atomic numbers {sorted(set(batch.numbers[unknown].tolist()))}')
    for name, values, per_atom in (
        ('positions', batch.positions, True),
        ('cell', batch.cell, False),
        ('energy', batch.energy, False),
        ('forces', batch.forces, True),
        ('stress', batch.stress, False),
    ):
        bad = np.isinf(values) if name in ('energy', 'forces', 'stress') else ~np.isfinite(values)
        if bad.any():
            first = np.argmax(bad.reshape(len(values), -1).any(axis=1))
            fail(atom_frame(first) if per_atom else first, name, 'contains NaN or infinite values')
