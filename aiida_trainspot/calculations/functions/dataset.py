"""Calculation functions that derive datasets from datasets: merge, subset, relabel, split, sample, deal out."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict, Float, Int, List

from ...data import PESData
from ...dataset import FrameBatch, query_mask, validate_query
from ...dataset.batch import SPLIT_CODES
from ...dataset.split import DEFAULT_FRACTIONS, assign_splits, validate_fractions

POSITION_TOLERANCE = 1e-6
"""Å: a label belongs to a frame only if every atom is where the frame has it."""


@calcfunction
def merge_datasets(**datasets: PESData) -> PESData:
    """Return one dataset with the frames of ``datasets``, taken in the order of their sorted keyword names."""
    if not datasets:
        raise ValueError('merge_datasets needs at least one dataset')

    def batches() -> Iterator[FrameBatch]:
        for label in sorted(datasets):
            yield from datasets[label].iter_batches()

    return PESData.from_batches(batches())


def _check_indices(indices: np.ndarray, size: int, strictly_increasing: bool = False) -> None:
    """Raise ``ValueError`` unless ``indices`` are unique frame indices of a dataset of ``size`` frames."""
    if len(indices) and not 0 <= indices.min() <= indices.max() < size:
        raise ValueError(f'indices must lie within [0, {size}): got {indices.min()}..{indices.max()}')
    if len(np.unique(indices)) != len(indices):
        raise ValueError('indices must be unique')
    if strictly_increasing and np.any(np.diff(indices) <= 0):
        raise ValueError('indices must be strictly increasing')


@calcfunction
def subset_dataset(dataset: PESData, indices: List | None = None, query: Dict | None = None) -> PESData:
    """Return the frames of ``dataset`` at ``indices`` and matching ``query``, in dataset order.

    ``query`` keys are those of :data:`aiida_trainspot.dataset.query.QUERY_KEYS` (split, origin, iteration,
    iteration_min, iteration_max, labelled, failed); every condition must hold.
    """
    conditions = query.get_dict() if query is not None else {}
    message = validate_query(conditions)
    if message:
        raise ValueError(message)
    wanted = None if indices is None else np.asarray(indices.get_list(), dtype=np.int64)
    if wanted is not None:
        _check_indices(wanted, len(dataset))

    def batches() -> Iterator[FrameBatch]:
        start = 0
        for batch in dataset.iter_batches():
            positions = np.arange(start, start + len(batch))
            keep = query_mask(batch, conditions) & (True if wanted is None else np.isin(positions, wanted))
            start += len(batch)
            yield batch.take(np.flatnonzero(keep))

    return PESData.from_batches(batches())


def _relabelled(batch: FrameBatch, local: np.ndarray, labels: FrameBatch, first_index: int) -> FrameBatch:
    """Return ``batch`` with the labels of ``labels`` put on its frames ``local`` (positions within the block)."""
    offsets = batch.offsets
    for label_index, frame_index in enumerate(local):
        atoms = slice(offsets[frame_index], offsets[frame_index + 1])
        label = labels.frame(label_index)
        same_atoms = np.array_equal(label.numbers, batch.numbers[atoms]) and np.allclose(
            label.positions, batch.positions[atoms], atol=POSITION_TOLERANCE, rtol=0
        )
        if not same_atoms:
            raise ValueError(f'frame {first_index + frame_index}: the label frame {label_index} has other atoms')
        batch.energy[frame_index] = labels.energy[label_index]
        batch.stress[frame_index] = labels.stress[label_index]
        batch.forces[atoms] = label.forces if label.forces is not None else np.nan
        batch.failure_reason[frame_index] = labels.failure_reason[label_index]
    return batch


@calcfunction
def relabel_dataset(dataset: PESData, labels: PESData, indices: List) -> PESData:
    """Return ``dataset`` with the labels of frame ``k`` of ``labels`` on its frame ``indices[k]``.

    Labels are the energy, forces, stress and failure reason. ``indices`` must be strictly increasing (both datasets
    are streamed side by side) and each label frame must have the same atoms at the same positions as the frame it
    labels. A label frame without labels (e.g. a failed DFT run with its ``failure_reason``) removes the frame's
    labels and records the reason.
    """
    targets = np.asarray(indices.get_list(), dtype=np.int64)
    _check_indices(targets, len(dataset), strictly_increasing=True)
    if len(targets) != len(labels):
        raise ValueError(f'{len(targets)} indices for {len(labels)} label frames: they must match one to one')

    def batches() -> Iterator[FrameBatch]:
        label_frames = labels.iter_frames()
        start = 0
        for batch in dataset.iter_batches():
            local = targets[(targets >= start) & (targets < start + len(batch))] - start
            block = FrameBatch.from_frames([next(label_frames) for _ in local])
            yield _relabelled(batch, local, block, start) if len(local) else batch
            start += len(batch)

    return PESData.from_batches(batches())


@calcfunction
def split_dataset(dataset: PESData, seed: Int, fractions: Dict | None = None) -> PESData:
    """Return ``dataset`` with every labelled frame tagged train, valid or test; existing tags are kept.

    Input structures and isolated atoms go to train; the other newly labelled frames are shared out at random
    (``seed``) in ``fractions`` (default 80/10/10, largest remainder, one validation frame whenever possible). See
    :mod:`aiida_trainspot.dataset.split`.
    """
    shares = fractions.get_dict() if fractions is not None else DEFAULT_FRACTIONS
    message = validate_fractions(shares)
    if message:
        raise ValueError(f'`fractions`: {message}')
    columns: dict[str, list] = {'split': [], 'labelled': [], 'origin': [], 'isolated': []}
    for batch in dataset.iter_batches():
        columns['split'].append(batch.split)
        columns['labelled'].append(batch.labelled)
        columns['origin'].extend(batch.origin)
        columns['isolated'].append((batch.natoms == 1) & ~batch.pbc.any(axis=1))
    splits = assign_splits(
        np.concatenate(columns['split']) if columns['split'] else np.zeros(0, np.int8),
        np.concatenate(columns['labelled']) if columns['labelled'] else np.zeros(0, bool),
        columns['origin'],
        np.concatenate(columns['isolated']) if columns['isolated'] else np.zeros(0, bool),
        shares,
        np.random.default_rng(seed.value),
    )

    def batches() -> Iterator[FrameBatch]:
        start = 0
        for batch in dataset.iter_batches():
            batch.split = splits[start : start + len(batch)]
            start += len(batch)
            yield batch

    return PESData.from_batches(batches())


def _train_mask(dataset: PESData) -> np.ndarray:
    """Return which frames of ``dataset`` carry the split tag ``train``."""
    code = SPLIT_CODES['train']
    return np.concatenate([batch.split == code for batch in dataset.iter_batches()] or [np.zeros(0, bool)])


def _kept_frames(dataset: PESData, keep: np.ndarray) -> PESData:
    """Return a new dataset with the frames of ``dataset`` where ``keep`` is true, in dataset order."""

    def batches() -> Iterator[FrameBatch]:
        start = 0
        for batch in dataset.iter_batches():
            yield batch.take(np.flatnonzero(keep[start : start + len(batch)]))
            start += len(batch)

    return PESData.from_batches(batches())


@calcfunction
def sample_training_frames(dataset: PESData, fraction: Float, seed: Int) -> PESData:
    """Return ``dataset`` with a random ``fraction`` (seeded) of its ``train`` frames and all its other frames.

    Committee members trained on different samples of the training set disagree more where data are thin (aims-PAX
    gives each member its own slice). Validation and test frames are kept so members are measured alike.
    """
    if not 0 < fraction.value <= 1:
        raise ValueError(f'`fraction` must lie in (0, 1], got {fraction.value}')
    is_train = _train_mask(dataset)
    train = np.flatnonzero(is_train)
    chosen = np.random.default_rng(seed.value).choice(
        train, size=max(1, round(fraction.value * len(train))), replace=False
    )
    keep = ~is_train
    keep[chosen] = True
    return _kept_frames(dataset, keep)


@calcfunction
def member_training_frames(dataset: PESData, member: Int, num_members: Int) -> PESData:
    """Return ``dataset`` with the ``train`` frames of committee member ``member`` of ``num_members``, and all others.

    The ``train`` frames are dealt out in turn: the one at position ``p`` among them (in dataset order) goes to
    member ``p mod num_members``. The members' training sets are disjoint and cover every training frame; a dataset
    that grows by appending frames (and keeps its split tags) leaves every member its earlier frames. Validation and
    test frames are kept for every member, so that the members are measured on the same frames (aims-PAX's distinct
    sets per member, without its per-member validation sets). Isolated atoms (one atom, not periodic) carry the
    reference energies: every member keeps them, and they are not dealt out.
    """
    if not num_members.value >= 1 or not 0 <= member.value < num_members.value:
        raise ValueError(f'`member` must lie in [0, {num_members.value}) for {num_members.value} members')
    isolated = np.concatenate(
        [(batch.natoms == 1) & ~batch.pbc.any(axis=1) for batch in dataset.iter_batches()] or [np.zeros(0, bool)]
    )
    dealt = _train_mask(dataset) & ~isolated
    keep = ~dealt
    keep[np.flatnonzero(dealt)[member.value :: num_members.value]] = True
    return _kept_frames(dataset, keep)
