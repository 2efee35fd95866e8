"""Conversion between ``ase.Atoms`` and frames, a block at a time, and the label keys of training files."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from .batch import DEFAULT_BLOCK_FRAMES, SPLIT_CODES, FrameBatch, validate_batch
from .fast_ase import VOIGT_TO_FULL, AtomsColumns, collect, gc_paused, iter_atoms, split_copy, split_rows, stack_labels
from .frame import SPLITS, Frame, validate_frame

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


def _jsonable(value: Any) -> Any:
    """Return ``value`` with numpy scalars and arrays, also inside dicts and lists, as Python numbers and lists."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _label_array(value: Any, shapes: tuple[tuple[int, ...], ...], index: int, name: str) -> np.ndarray:
    """Return the label ``value`` as a float array of one of ``shapes``, or raise ``ValueError`` naming it."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exception:
        raise ValueError(f'frame {index}: field `{name}` cannot be read as float: {exception}') from None
    if array.shape not in shapes:
        expected = ' or '.join(str(shape) for shape in shapes)
        raise ValueError(f'frame {index}: field `{name}` has shape {array.shape}, expected {expected}')
    return array


@dataclass
class _Record:
    """The labels and metadata of one ``ase.Atoms``, of checked shapes; stress is flat, 6 (Voigt) or 9 values."""

    energy: float = np.nan
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    origin: str = ''
    iteration: int = 0
    split: int = 0
    failure_reason: str = ''
    info: str = '{}'


def _record(atoms: Atoms, keys: LabelKeys | None, index: int) -> _Record:
    """Return the labels (from the single-point calculator, else under ``keys``) and metadata of ``atoms``."""
    results = atoms.calc.results if atoms.calc is not None else {}
    info = atoms.info
    energy, forces, stress = results.get('energy'), results.get('forces'), results.get('stress')
    if keys is not None:
        energy = info.get(keys.energy) if energy is None else energy
        stress = info.get(keys.stress) if stress is None else stress
        forces = atoms.arrays.get(keys.forces) if forces is None else forces
    record = _Record()
    if energy is not None:
        record.energy = float(_label_array(energy, ((),), index, 'energy'))
        if not np.isfinite(record.energy):
            raise ValueError(f'frame {index}: field `energy` contains NaN or infinite values')
    if forces is not None:
        record.forces = _label_array(forces, ((len(atoms), 3),), index, 'forces')
    if stress is not None:
        record.stress = _label_array(stress, ((3, 3), (9,), (6,)), index, 'stress').ravel()
    if info:
        record.origin, record.iteration, record.split, record.failure_reason, record.info = _metadata(info, keys, index)
    return record


RESULTS = ('energy', 'forces', 'stress')
"""The calculator results a frame can have."""

NO_METADATA = ('', 0, 0, '', '{}')
"""The metadata of a frame whose ``atoms.info`` is empty."""


def _metadata(info: dict[str, Any], keys: LabelKeys | None, index: int) -> tuple[str, int, int, str, str]:
    """Return origin, iteration, split code, failure reason and the JSON of the other entries of ``atoms.info``."""
    skipped = {*METADATA_KEYS, 'config_type', *((keys.energy, keys.stress) if keys else ())}
    split = info.get('split', '')
    if split not in SPLIT_CODES:
        raise ValueError(f'frame {index}: field `split` is {split!r}, expected one of {tuple(SPLIT_CODES)}')
    rest = {key: _jsonable(value) for key, value in info.items() if key not in skipped}
    try:
        text = json.dumps(rest, sort_keys=True) if rest else '{}'
    except (TypeError, ValueError) as exception:
        raise ValueError(f'frame {index}: field `info` is not JSON-serialisable: {exception}') from None
    origin, reason = str(info.get('origin', '')), str(info.get('failure_reason', ''))
    return origin, int(info.get('iteration', 0)), SPLIT_CODES[split], reason, text


def batch_from_atoms(structures: Sequence[Atoms], keys: LabelKeys | None = None, first_index: int = 0) -> FrameBatch:
    """Return the block of ``structures``: labels from their single-point calculators, else under ``keys``.

    ``atoms.info`` entries named in :data:`METADATA_KEYS` become frame metadata, the others go to ``info``. Raise
    ``ValueError`` naming the frame (counted from ``first_index``) and the field of the first bad value.
    """
    with gc_paused():
        batch = _stacked_batch(structures, keys) if structures else None
        if batch is None:  # a bad value somewhere: convert frame by frame, which names it
            batch = _batch_from_records(structures, keys, first_index)
    validate_batch(batch, first_index)
    return batch


def _stacked_batch(structures: Sequence[Atoms], keys: LabelKeys | None) -> FrameBatch | None:
    """Return the block of ``structures`` converted column by column, or ``None`` if a label or metadata is bad."""
    names = (keys.energy, keys.forces, keys.stress) if keys is not None else (None, None, None)
    columns = collect(structures, *names)
    natoms = np.fromiter(map(len, columns['positions']), dtype=np.int64, count=len(structures))
    labels = stack_labels(natoms, columns['energy'], columns['forces'], columns['stress'])
    if labels is None:
        return None
    try:
        rows = [_metadata(info, keys, 0) if info else NO_METADATA for info in columns['info']]  # bad: caught below
        origin, iteration, split, failure_reason, info = zip(*rows, strict=True)
        return FrameBatch(
            natoms=natoms,
            numbers=np.concatenate(columns['numbers']),
            positions=np.concatenate(columns['positions'], dtype=np.float64),
            forces=labels.forces,
            cell=np.array(columns['cell'], dtype=np.float64).reshape(-1, 3, 3),
            pbc=np.array(columns['pbc'], dtype=bool).reshape(-1, 3),
            energy=labels.energy,
            stress=labels.stress,
            iteration=np.array(iteration, dtype=np.int64),
            split=np.array(split, dtype=np.int8),
            origin=list(origin),
            failure_reason=list(failure_reason),
            info=list(info),
        )
    except (TypeError, ValueError):
        return None


def _batch_from_records(structures: Sequence[Atoms], keys: LabelKeys | None, first_index: int) -> FrameBatch:
    """Return the block of ``structures`` converted frame by frame, raising ``ValueError`` at the first bad value."""
    natoms = np.fromiter(map(len, structures), dtype=np.int64, count=len(structures))
    records = [_record(atoms, keys, first_index + index) for index, atoms in enumerate(structures)]
    offsets = np.concatenate(([0], np.cumsum(natoms)))
    forces = np.full((int(offsets[-1]), 3), np.nan)
    stress = np.full((len(structures), 9), np.nan)
    for index, record in enumerate(records):
        if record.forces is not None:
            forces[offsets[index] : offsets[index + 1]] = record.forces
        if record.stress is not None:
            stress[index] = record.stress if len(record.stress) == 9 else record.stress[VOIGT_TO_FULL]
    _check_given_labels_finite(records, forces, stress, natoms, first_index)
    return FrameBatch(
        natoms=natoms,
        numbers=np.concatenate([atoms.arrays['numbers'] for atoms in structures]) if structures else np.zeros(0, int),
        positions=np.concatenate([atoms.arrays['positions'] for atoms in structures]) if structures else forces,
        forces=forces,
        cell=np.array([atoms.cell.array for atoms in structures]).reshape(-1, 3, 3),
        pbc=np.array([atoms.pbc for atoms in structures], dtype=bool).reshape(-1, 3),
        energy=np.array([record.energy for record in records], dtype=np.float64),
        stress=stress.reshape(-1, 3, 3),
        iteration=np.array([record.iteration for record in records], dtype=np.int64),
        split=np.array([record.split for record in records], dtype=np.int8),
        origin=[record.origin for record in records],
        failure_reason=[record.failure_reason for record in records],
        info=[record.info for record in records],
    )


def _check_given_labels_finite(
    records: list[_Record], forces: np.ndarray, stress: np.ndarray, natoms: np.ndarray, first_index: int
) -> None:
    """Raise ``ValueError`` naming the first frame whose given forces or stress hold NaN or infinite values."""
    has_forces = np.array([record.forces is not None for record in records], dtype=bool)
    has_stress = np.array([record.stress is not None for record in records], dtype=bool)
    atom_bad = ~np.isfinite(forces).all(axis=1) & np.repeat(has_forces, natoms)
    for name, bad in (
        ('forces', np.bincount(np.repeat(np.arange(len(natoms)), natoms)[atom_bad], minlength=len(natoms)) > 0),
        ('stress', ~np.isfinite(stress).all(axis=1) & has_stress),
    ):
        if bad.any():
            raise ValueError(
                f'frame {first_index + int(np.argmax(bad))}: field `{name}` contains NaN or infinite values'
            )


def iter_batches_from_atoms(
    structures: Iterable[Atoms], keys: LabelKeys | None = None, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> Iterator[FrameBatch]:
    """Yield ``structures`` as checked blocks of at most ``block_frames`` frames (see :func:`batch_from_atoms`)."""
    iterator, first_index = iter(structures), 0
    while block := list(itertools.islice(iterator, block_frames)):
        yield batch_from_atoms(block, keys, first_index)
        first_index += len(block)


def iter_atoms_from_batch(batch: FrameBatch) -> Iterator[Atoms]:
    """Yield the frames of ``batch`` as ``ase.Atoms``: labels in a single-point calculator, metadata in ``info``.

    Each frame is built as it is asked for, from rows copied out of ``batch`` a few frames at a time (see
    :func:`~aiida_trainspot.dataset.fast_ase.iter_atoms`): no two frames, nor a frame and ``batch``, share an array.
    """
    if not len(batch):
        return
    offsets = batch.offsets
    yield from iter_atoms(
        AtomsColumns(
            offsets=offsets,
            numbers=batch.numbers,
            positions=batch.positions,
            cell=batch.cell,
            pbc=batch.pbc,
            info=_infos(batch),
            results=_results(batch, offsets),
            arrays={name: (values, _present(values, batch)) for name, values in batch.atom_arrays.items()},
        )
    )


def _present(values: np.ndarray, batch: FrameBatch | None = None) -> np.ndarray:
    """Return a mask of the frames with a value (not all NaN) in an extra per-frame column, or per-atom of ``batch``."""
    row_missing = np.isnan(values.reshape(len(values), -1)).all(axis=1)
    if batch is None:
        return ~row_missing
    atom_frame = np.repeat(np.arange(len(batch)), batch.natoms)
    return np.bincount(atom_frame, weights=~row_missing, minlength=len(batch)) > 0


def _infos(batch: FrameBatch) -> list[dict[str, Any]]:
    """Return each frame's ``atoms.info``: its JSON info, metadata and the extra per-frame columns it has."""
    splits = [SPLITS[code] for code in batch.split.tolist()]
    rows = zip(batch.info, batch.origin, batch.iteration.tolist(), splits, batch.failure_reason, strict=True)
    infos = [
        {
            **(json.loads(text) if text != '{}' else {}),
            'origin': origin,
            'iteration': iteration,
            'split': split,
            'failure_reason': reason,
        }
        for text, origin, iteration, split, reason in rows
    ]
    for name, values in batch.frame_arrays.items():
        for index in np.flatnonzero(_present(values)).tolist():
            infos[index][name] = np.array(values[index])
    return infos


def _results(batch: FrameBatch, offsets: np.ndarray) -> list[dict[str, Any]]:
    """Return each frame's calculator results: energy, forces and (Voigt) stress where it has them, in own arrays."""
    atom_frame = np.repeat(np.arange(len(batch)), batch.natoms)
    forces_missing = np.bincount(atom_frame, weights=np.isnan(batch.forces).any(axis=1), minlength=len(batch)) > 0
    has = np.array([~np.isnan(batch.energy), ~forces_missing & (batch.natoms > 0), ~np.isnan(batch.stress[:, 0, 0])])
    columns = (
        batch.energy.tolist(),
        split_copy(batch.forces, offsets),
        split_rows(full_3x3_to_voigt_6_stress(batch.stress)),
    )
    if has.all():
        return [{'energy': e, 'forces': f, 'stress': s} for e, f, s in zip(*columns, strict=True)]
    results = []
    for flags, *values in zip(has.T.tolist(), *columns, strict=True):
        results.append({name: value for name, flag, value in zip(RESULTS, flags, values, strict=True) if flag})
    return results


def frame_from_atoms(atoms: Atoms, keys: LabelKeys | None = None) -> Frame:
    """Return the frame of ``atoms`` (see :func:`batch_from_atoms`)."""
    return batch_from_atoms([atoms], keys).frame(0)


def frame_to_atoms(frame: Frame) -> Atoms:
    """Return ``frame`` as ``ase.Atoms`` (see :func:`iter_atoms_from_batch`)."""
    return next(iter_atoms_from_batch(FrameBatch.from_frames([validate_frame(frame, 0)])))
